"""Declarative source mappings (YAML) for the ``mapped`` format, validated up front.

A mapping file describes how any CSV / Parquet / JSON Lines export maps onto the canonical event::

    columns:          # source column -> canonical column (required: one of them -> user_id)
      uid: user_id
      action: event_type
    timestamp:        # required
      column: ts
      format: "%d/%m/%Y %H:%M:%S"   # strftime, or unix_s / unix_ms / iso8601
      timezone: Europe/Berlin       # for times without an offset; default UTC
    event_types:      # optional: source value -> canonical event type (others pass through)
      page_view: view
    defaults:         # optional: canonical column -> constant (fills nulls of a mapped column)
      channel: Direct
    event_id: click_id  # optional: source column holding a unique id; else a content hash

Every mistake (unknown keys, unknown or duplicate target columns, no user_id / event_type
source, unknown event types, a bad time format or time zone) raises ``MappingError`` naming the
file and the key, before any data is read. Messages name keys only (cut short, a few at most),
never the file's values: a mapping is read from a path typed in run config, and the event log
must not become a way to print a file (``anomaly_pipeline.messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from anomaly_pipeline.adapters.timestamps import TIME_FORMAT_KEYWORDS, check_time_format
from anomaly_pipeline.messages import shown_keys, yaml_problem
from anomaly_pipeline.schema import EVENT_TYPES, RAW_EVENT_COLUMNS

_TOP_LEVEL_KEYS: Final = frozenset({"columns", "timestamp", "event_types", "defaults", "event_id"})
_TIMESTAMP_KEYS: Final = frozenset({"column", "format", "timezone"})
#: event_time and event_id have their own keys (they need parsing / may be derived).
MAPPABLE_COLUMNS: Final[tuple[str, ...]] = tuple(
    name for name in RAW_EVENT_COLUMNS if name not in ("event_id", "event_time")
)


class MappingError(ValueError):
    """A mapping file is invalid; the message names the file and the offending key."""

    def __init__(self, origin: object, problem: str) -> None:
        super().__init__(f"invalid source mapping {origin}: {problem}")


@dataclass(frozen=True)
class SourceMapping:
    """A validated mapping; build it with ``load_mapping`` or ``parse_mapping``."""

    origin: str
    columns: Mapping[str, str]
    time_column: str
    time_format: str
    time_zone: str = "UTC"
    event_types: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    event_id_column: str | None = None

    @property
    def source_columns(self) -> list[str]:
        """Every source column the mapping reads, in a stable order without repeats."""
        named = [*self.columns, self.time_column]
        if self.event_id_column is not None:
            named.append(self.event_id_column)
        return list(dict.fromkeys(named))


def _string_map(origin: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise MappingError(origin, f"'{key}' must be a mapping, got {type(value).__name__}")
    for inner_key, inner_value in value.items():
        if not isinstance(inner_key, str) or not isinstance(inner_value, str):
            raise MappingError(
                origin, f"'{key}' entry {shown_keys([inner_key])} must map text to text "
                "(quote values YAML reads as numbers or booleans)"
            )
    return dict(value)


def _check_targets(origin: str, key: str, targets: dict[str, str]) -> None:
    """``targets``: entry key → the canonical column it fills."""
    unknown = [entry for entry, target in targets.items() if target not in MAPPABLE_COLUMNS]
    if unknown:
        raise MappingError(
            origin,
            f"'{key}' entries {shown_keys(unknown)} target unknown column(s); allowed: "
            f"{list(MAPPABLE_COLUMNS)} (event_time and event_id have their own keys 'timestamp' "
            "and 'event_id')",
        )
    targets = list(targets.values())  # every one a canonical column name now
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    if repeated:
        raise MappingError(origin, f"'{key}' maps several source columns onto {repeated}")


def _parse_timestamp(origin: str, value: Any) -> tuple[str, str, str]:
    if not isinstance(value, dict):
        raise MappingError(origin, "'timestamp' must be a mapping with 'column' and 'format'")
    unknown = sorted(set(value) - _TIMESTAMP_KEYS)
    if unknown:
        raise MappingError(origin, f"unknown key(s) {shown_keys(unknown)} in 'timestamp'; "
                                   f"allowed: {sorted(_TIMESTAMP_KEYS)}")
    for required in ("column", "format"):
        if not isinstance(value.get(required), str) or not value[required]:
            raise MappingError(origin, f"'timestamp.{required}' is required and must be text")
    time_zone = value.get("timezone", "UTC")
    try:
        ZoneInfo(str(time_zone))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise MappingError(origin, "'timestamp.timezone' is not a known IANA time zone "
                                   "(e.g. Europe/Berlin)") from None
    try:
        check_time_format(value["format"])
    except ValueError:
        raise MappingError(origin, f"'timestamp.format' is neither one of "
                                   f"{list(TIME_FORMAT_KEYWORDS)} nor a strftime pattern that "
                                   "can parse timestamps") from None
    return value["column"], value["format"], str(time_zone)


def parse_mapping(document: Any, origin: str = "<mapping>") -> SourceMapping:
    """Validate a decoded mapping document (see the module docstring for its layout)."""
    if not isinstance(document, dict):
        raise MappingError(origin, "the document must be a YAML mapping")
    unknown = sorted(str(key) for key in set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        raise MappingError(origin, f"unknown key(s) {shown_keys(unknown)}; "
                                   f"allowed: {sorted(_TOP_LEVEL_KEYS)}")
    for required in ("columns", "timestamp"):
        if required not in document:
            raise MappingError(origin, f"missing required key '{required}'")

    columns = _string_map(origin, "columns", document["columns"])
    _check_targets(origin, "columns", columns)
    time_column, time_format, time_zone = _parse_timestamp(origin, document["timestamp"])

    event_types = _string_map(origin, "event_types", document.get("event_types") or {})
    bad_types = [entry for entry, target in event_types.items() if target not in EVENT_TYPES]
    if bad_types:
        raise MappingError(origin, f"'event_types' entries {shown_keys(bad_types)} map onto "
                                   f"unknown event type(s); known: {list(EVENT_TYPES)}")

    defaults = _string_map(origin, "defaults", document.get("defaults") or {})
    _check_targets(origin, "defaults", {name: name for name in defaults})

    provided = set(columns.values())
    if "user_id" not in provided:
        raise MappingError(origin, "no source column maps onto the required column 'user_id'")
    if "event_type" not in provided and "event_type" not in defaults:
        raise MappingError(origin, "nothing provides the required column 'event_type' "
                                   "(map a source column onto it or give it in 'defaults')")

    event_id = document.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id):
        raise MappingError(origin, "'event_id' must name a source column (text)")

    return SourceMapping(
        origin=origin, columns=columns, time_column=time_column, time_format=time_format,
        time_zone=time_zone, event_types=event_types, defaults=defaults, event_id_column=event_id,
    )


def load_mapping(path: Path) -> SourceMapping:
    """Read and validate a YAML mapping file."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise MappingError(path, yaml_problem(error)) from None
    except UnicodeDecodeError:
        raise MappingError(path, "not UTF-8 text") from None
    return parse_mapping(document, origin=str(path))
