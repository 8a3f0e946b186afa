"""genreflow: reproducible music-genre classification on GTZAN."""

__version__ = "0.1.0"
