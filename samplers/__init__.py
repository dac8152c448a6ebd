"""The built-in sampler plugins beyond Optuna's own, each written exactly as a user's plugin would be."""
