"""Measuring: the evaluation set, the run matrix, parity and tolerances,
timing loops, rows, verify and the reference-kernel witness."""
