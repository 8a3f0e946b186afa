"""Layer 0: what every other layer uses (errors, the typed config, paths, process helpers).

Imports nothing else of genreflow. The layers, bottom first: core, audio, data and models,
kinds and tracking, serving, stages, cli (``tests/code/test_layers.py`` holds the rank table).
"""
