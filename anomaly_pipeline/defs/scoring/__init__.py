"""Scoring stage: champion scores per day (points, flag, reasons, outcome) and alerts."""
