"""Training: the seed CNNs, the config, the in-process fit and the multi-worker
supervisor and its workers."""
