"""Layer 2: what trained models are made of and read: Keras layers, the batched forward
pass, the model bundle's metadata, the feature store and the split's identity."""
