"""``read_source``: the one entry point the ingest layer calls for a landing file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.canonical import read_canonical
from anomaly_pipeline.adapters.fraud_log import read_fraud_log
from anomaly_pipeline.adapters.mapped import read_mapped
from anomaly_pipeline.adapters.mapping import load_mapping
from anomaly_pipeline.adapters.taobao import read_taobao

_READERS: Final[dict[str, Callable[[Path], pl.DataFrame]]] = {
    "canonical": read_canonical,
    "taobao": read_taobao,
    "fraud_log": read_fraud_log,
}
MAPPED: Final = "mapped"
SOURCE_FORMATS: Final[tuple[str, ...]] = (*_READERS, MAPPED)


def read_source(source_format: str, path: Path, mapping: Path | None = None) -> pl.DataFrame:
    """Read one source file into a staged frame (``STAGED_SCHEMA``: text values + raw_record).

    ``mapping`` (a YAML file, see ``adapters.mapping``) is required by the ``mapped`` format and
    rejected by the others. Raises ``MalformedSourceError`` when the file as a whole is unusable,
    ``MappingError`` for a bad mapping, ``ValueError`` for an unknown format.
    """
    path = Path(path)
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; known: {list(SOURCE_FORMATS)}")
    if source_format == MAPPED:
        if mapping is None:
            raise ValueError("source format 'mapped' needs a mapping file (mapping=...)")
        return read_mapped(path, load_mapping(Path(mapping)))
    if mapping is not None:
        raise ValueError(f"source format {source_format!r} takes no mapping file; got {mapping}")
    return _READERS[source_format](path)
