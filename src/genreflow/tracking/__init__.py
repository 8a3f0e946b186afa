"""Layer 3: MLflow plumbing (stores, provenance tags, logged requirements) and the Optuna
sampler."""
