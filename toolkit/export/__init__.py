"""Export: a model source to an artifacts folder, one transaction per request."""
