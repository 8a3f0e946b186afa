"""Layer 1: audio in (decoding, the input contract, codecs, the log-mel front-end)."""
