"""Kind ``segcnn``: its settings with its windows (``config``), the kind and its front-end
(``kind``) and its Keras layer (``layers``: SpecAugment)."""
