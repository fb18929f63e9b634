"""Evaluation stage: every candidate side by side on the holdout days, the champion gate."""
