"""Kind ``segcnn`` (``kind``) and its Keras layer (``layers``: SpecAugment)."""
