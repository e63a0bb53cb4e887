"""Bench: the run matrix with speed, memory and FLOPs on top, the CI gates, the
recommendation and the report with its plots."""
