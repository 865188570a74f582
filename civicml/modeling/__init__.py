"""Models: feature preprocessing (FeatureSpec), estimator families and their fit, search spaces,
saving and loading with the model hash, and distributed training over shards."""
