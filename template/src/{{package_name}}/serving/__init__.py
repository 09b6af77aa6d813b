"""Serve a registered model's predictions: the model comes from the MLflow registry at start."""
