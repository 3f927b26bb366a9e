"""A training run's folder on disk: what it is, who holds it, its heartbeat and checkpoints."""
