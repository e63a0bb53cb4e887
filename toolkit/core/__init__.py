"""The ground floor: atomic writes, limits on what is read, folder walks, safe
names, signals, quiet TensorFlow, progress reports, default locations and the
output lock. Imports nothing of cnnx but toolkit.errors."""
