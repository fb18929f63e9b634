"""Anomaly detectors, PyOD-style: one class per detector, higher score = more abnormal."""
