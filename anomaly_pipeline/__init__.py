"""anomaly_pipeline: daily anomaly scores for e-commerce behaviour logs.

The package is layered (see README): the domain core (this package's top-level modules and
sub-packages other than ``defs`` and ``instance``) imports no Dagster; ``anomaly_pipeline.defs``
wires it into a Dagster code location assembled by ``anomaly_pipeline.definitions``;
``anomaly_pipeline.instance`` holds the Dagster instance's plugins that ``dagster.yaml`` names.
"""
