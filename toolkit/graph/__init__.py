"""Model graphs read without running them: the op policy, SavedModel and TF.js
graph reading, and the GPU delegate readiness check."""
