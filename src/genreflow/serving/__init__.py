"""Layer 4: a trained model answering audio: the predictor, the MLflow pyfunc model, its
loader, the guarded HTTP server and ``genreflow predict``."""
