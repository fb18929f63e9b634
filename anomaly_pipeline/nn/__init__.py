"""Lightning models behind the neural detectors, kept apart as Lightning recommends.

* ``settings`` — ``TrainerSettings``: hardware and loop configuration (pydantic, no torch, so
  the Dagster layer can build and validate it without importing torch);
* ``data`` — in-memory tensor datasets and DataModule with batch-level indexing;
* ``fitting`` — the one place that builds a ``Trainer`` and runs it (seeds, early stopping, best
  checkpoint, per-epoch history, throughput);
* ``autoencoder`` / ``sequence`` — the model math (LightningModules);
* ``detector_support`` — what the autoencoder and sequence ``Detector`` wrappers share.

This package is imported lazily by the detector registry; only ``settings`` is torch-free.
"""
