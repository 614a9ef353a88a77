"""Runs: resolve a run's config, train with periodic evaluation and checkpoints, record the outcome."""
