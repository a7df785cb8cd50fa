"""ML assets: the training set, the Spark model tracked in MLflow, its gate, serving and drift."""
