"""Ingest stage: landing files → raw_events (+ quarantine) and event_labels."""
