"""Source adapters: map each source format onto the canonical event columns as text.

``read_source(format, path, mapping=None, time_format=None, time_zone=None)`` returns a *staged*
frame (``STAGED_SCHEMA``: every canonical column as a string plus ``raw_record``) that
``anomaly_pipeline.cleaning.clean`` parses and splits into accepted and quarantined rows. Formats
(``SOURCE_FORMATS``): ``canonical``, ``taobao``, ``fraud_log`` and ``mapped`` (through a YAML
``SourceMapping``). ``source_reader`` gives the same per batch of rows, for history files too large
to read at once.
"""

from anomaly_pipeline.adapters.mapping import MappingError, SourceMapping, load_mapping
from anomaly_pipeline.adapters.registry import (
    SOURCE_FORMATS,
    SourceReader,
    read_source,
    source_reader,
)
from anomaly_pipeline.adapters.staged import STAGED_SCHEMA, MalformedSourceError

__all__ = [
    "SOURCE_FORMATS",
    "STAGED_SCHEMA",
    "MalformedSourceError",
    "MappingError",
    "SourceMapping",
    "SourceReader",
    "load_mapping",
    "read_source",
    "source_reader",
]
