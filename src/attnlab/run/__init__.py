"""The run's plumbing: the training pipeline, loggers and callbacks, W&B, DDP, results, checks."""
