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
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from anomaly_pipeline.adapters.timestamps import TIME_FORMAT_KEYWORDS, check_time_format
from anomaly_pipeline.config_model import (
    ConfigModel,
    Problem,
    empty_when_null,
    key_path,
    problems,
    unknown_keys,
)
from anomaly_pipeline.messages import shown_keys, yaml_problem
from anomaly_pipeline.schema import EVENT_TYPES, RAW_EVENT_COLUMNS

#: event_time and event_id have their own keys (they need parsing / may be derived).
MAPPABLE_COLUMNS: Final[tuple[str, ...]] = tuple(
    name for name in RAW_EVENT_COLUMNS if name not in ("event_id", "event_time")
)
#: source value → canonical value; null (every entry commented out) reads as empty.
TextMap = Annotated[dict[str, str], empty_when_null({})]
_TEXT_MAPS: Final = ("columns", "event_types", "defaults")


class MappingError(ValueError):
    """A mapping file is invalid; the message names the file and the offending key."""

    def __init__(self, origin: object, problem: str) -> None:
        super().__init__(f"invalid source mapping {origin}: {problem}")


class TimestampMapping(ConfigModel):
    """Which source column holds the event time, how to parse it, and the zone of times
    written without an offset."""

    column: str = Field(min_length=1)
    format: str = Field(min_length=1)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known IANA time zone (e.g. Europe/Berlin)") from None
        return zone

    @field_validator("format")
    @classmethod
    def _parsable_format(cls, time_format: str) -> str:
        try:
            check_time_format(time_format)
        except ValueError:
            raise ValueError(
                f"is neither one of {list(TIME_FORMAT_KEYWORDS)} nor a strftime "
                "pattern that can parse timestamps"
            ) from None
        return time_format


class SourceMapping(ConfigModel):
    """A validated mapping; build it with ``load_mapping`` or ``parse_mapping``. The file's
    ``event_id`` key is ``event_id_column`` here."""

    columns: dict[str, str]
    timestamp: TimestampMapping
    event_types: TextMap = Field(default_factory=dict)
    defaults: TextMap = Field(default_factory=dict)
    event_id_column: str | None = Field(None, alias="event_id", min_length=1)
    _origin: str = PrivateAttr("<mapping>")

    @field_validator("columns")
    @classmethod
    def _columns_target_canonical_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        _check_targets(columns)
        return columns

    @field_validator("defaults")
    @classmethod
    def _defaults_fill_canonical_columns(cls, defaults: dict[str, str]) -> dict[str, str]:
        _check_targets({name: name for name in defaults})
        return defaults

    @field_validator("event_types")
    @classmethod
    def _known_event_types(cls, event_types: dict[str, str]) -> dict[str, str]:
        unknown = [entry for entry, target in event_types.items() if target not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"entries {shown_keys(unknown)} map onto unknown event type(s); "
                f"known: {list(EVENT_TYPES)}"
            )
        return event_types

    @model_validator(mode="after")
    def _required_columns_provided(self) -> SourceMapping:
        provided = set(self.columns.values())
        if "user_id" not in provided:
            raise ValueError("no source column maps onto the required column 'user_id'")
        if "event_type" not in provided and "event_type" not in self.defaults:
            raise ValueError(
                "nothing provides the required column 'event_type' (map a source "
                "column onto it or give it in 'defaults')"
            )
        return self

    @property
    def origin(self) -> str:
        """The file the mapping was read from (for messages)."""
        return self._origin

    @property
    def time_zone(self) -> str:
        """The zone of source times written without an offset."""
        return self.timestamp.timezone

    @property
    def source_columns(self) -> list[str]:
        """Every source column the mapping reads, in a stable order without repeats."""
        named = [*self.columns, self.timestamp.column]
        if self.event_id_column is not None:
            named.append(self.event_id_column)
        return list(dict.fromkeys(named))


def _check_targets(targets: Mapping[str, str]) -> None:
    """``targets``: entry key → the canonical column it fills."""
    unknown = [entry for entry, target in targets.items() if target not in MAPPABLE_COLUMNS]
    if unknown:
        raise ValueError(
            f"entries {shown_keys(unknown)} target unknown column(s); allowed: "
            f"{list(MAPPABLE_COLUMNS)} (event_time and event_id have their own keys "
            "'timestamp' and 'event_id')"
        )
    filled = list(targets.values())
    repeated = sorted({t for t in filled if filled.count(t) > 1})
    if repeated:
        raise ValueError(f"maps several source columns onto {repeated}")


def parse_mapping(document: Any, origin: str = "<mapping>") -> SourceMapping:
    """Validate a decoded mapping document (see the module docstring for its layout)."""
    try:
        mapping = SourceMapping.model_validate(document)
    except ValidationError as error:
        raise MappingError(origin, _describe(problems(error, SourceMapping))) from None
    mapping._origin = origin
    return mapping


def _describe(found: list[Problem]) -> str:
    """The first problem in this module's words; unknown keys of one section together."""
    first = found[0]
    where = key_path(first.loc)
    unknown = unknown_keys(found)
    if unknown is not None:
        inside = f" in '{unknown.section}'" if unknown.section else ""
        return f"unknown key(s) {unknown.keys}{inside}; allowed: {unknown.allowed}"
    if first.kind == "missing":
        return (
            f"missing required key '{where}'" if len(first.loc) == 1 else f"'{where}' is required"
        )
    if not first.loc:
        return "the document must be a YAML mapping" if first.kind == "model_type" else first.text
    if first.kind == "string_type" and first.loc[0] in _TEXT_MAPS and len(first.loc) > 1:
        return (
            f"'{first.loc[0]}' entry {shown_keys(first.loc[1:2])} must map text to text "
            "(quote values YAML reads as numbers or booleans)"
        )
    if first.loc == ("event_id",):
        return "'event_id' must name a source column (text)"
    return f"'{where}' {first.text}"


def load_mapping(path: Path) -> SourceMapping:
    """Read and validate a YAML mapping file."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise MappingError(path, yaml_problem(error)) from None
    except UnicodeDecodeError:
        raise MappingError(path, "not UTF-8 text") from None
    return parse_mapping(document, origin=str(path))
