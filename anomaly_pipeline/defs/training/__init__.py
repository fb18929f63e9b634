"""Training stage: training_set → baseline_models, anomaly_model (torchrun), tracked in MLflow."""
