"""Layer 5: the pipeline stages (validate, split, features, embed, figures, train, tune,
register, report), each a function the CLI calls."""
