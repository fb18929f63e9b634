"""Training stage: training_set → baseline_models and anomaly_model (torchrun), tracked in MLflow."""
