"""Kind ``inception``: its settings (``config``), its Keras layer (``layers``), the frozen base's
cached embeddings (``embed``) and the kind with its trained top (``kind``)."""
