"""MLOps: training recipes, training runs logged to MLflow, and the MLflow model registry."""
