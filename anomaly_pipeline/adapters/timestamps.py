"""Timestamp parsing shared by the adapters (source formats) and cleaning (staged ISO-8601).

Adapters convert each source's timestamp format to one staged text form, ISO-8601 in UTC with an
explicit offset (``2017-11-26T00:00:00.000000+00:00``). A value that does not parse is kept as
its raw text, so cleaning quarantines that row (cleaning only accepts ISO-8601 *with* an offset,
which a raw naive value never has) and its reason shows what the source really contained.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import polars as pl

from anomaly_pipeline.schema import UTC_MICROS

#: Format keywords a mapping may use instead of a strftime pattern.
UNIX_SECONDS: Final = "unix_s"
UNIX_MILLIS: Final = "unix_ms"
ISO8601: Final = "iso8601"
TIME_FORMAT_KEYWORDS: Final[tuple[str, ...]] = (UNIX_SECONDS, UNIX_MILLIS, ISO8601)

#: The staged text form of a timestamp.
STAGED_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.6f%:z"

# ``%.f`` makes fractional seconds optional; ``%#z`` accepts ``Z``, ``+hh:mm`` and ``+hhmm``.
_ISO_WITH_OFFSET: Final = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_ISO_NAIVE: Final = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
_OFFSET_DIRECTIVE: Final = re.compile(r"%[#:]*z")
_UNIT_SCALE: Final = {UNIX_SECONDS: 1_000_000.0, UNIX_MILLIS: 1_000.0}


def _localise(naive: pl.Expr, time_zone: str) -> pl.Expr:
    # Wall-clock times that DST skips become null (unparsable → quarantined); repeated ones take
    # the earlier instant, because raising would fail the whole file over one ambiguous hour.
    return naive.dt.replace_time_zone(
        time_zone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def parse_iso8601(text: pl.Expr, naive_time_zone: str | None = None) -> pl.Expr:
    """ISO-8601 text → ``Datetime(us, UTC)``, null where it does not parse.

    Values with an offset are converted to UTC. Values without one are read in
    ``naive_time_zone``, or rejected (null) when it is ``None``: that is how cleaning insists on
    unambiguous staged timestamps.
    """
    with_offset = [
        text.str.to_datetime(fmt, strict=False, time_unit="us").dt.convert_time_zone("UTC")
        for fmt in _ISO_WITH_OFFSET
    ]
    if naive_time_zone is None:
        return pl.coalesce(with_offset)
    naive = [
        _localise(text.str.to_datetime(fmt, strict=False, time_unit="us"), naive_time_zone)
        for fmt in _ISO_NAIVE
    ]
    return pl.coalesce(*with_offset, *naive)


def _parse_unix(text: pl.Expr, unit: str) -> pl.Expr:
    number = text.cast(pl.Float64, strict=False)
    # Out-of-range numbers (1e300) fail the cast and become null, i.e. unparsable.
    micros = pl.when(number.is_finite()).then(number * _UNIT_SCALE[unit]).round()
    epoch = pl.from_epoch(micros.cast(pl.Int64, strict=False), time_unit="us")
    return epoch.dt.replace_time_zone("UTC")


def _has_offset_directive(time_format: str) -> bool:
    """Whether a strftime pattern carries its own UTC offset (then the time zone is not used)."""
    return _OFFSET_DIRECTIVE.search(time_format) is not None


def parse_timestamp(text: pl.Expr, time_format: str, time_zone: str = "UTC") -> pl.Expr:
    """Source timestamp text → ``Datetime(us, UTC)`` (null where unparsable).

    ``time_format`` is a keyword of ``TIME_FORMAT_KEYWORDS`` or a strftime pattern; naive values
    are wall-clock times in ``time_zone``.
    """
    if time_format in _UNIT_SCALE:
        return _parse_unix(text, time_format)
    if time_format == ISO8601:
        return parse_iso8601(text, naive_time_zone=time_zone)
    parsed = text.str.to_datetime(time_format, strict=False, time_unit="us")
    if _has_offset_directive(time_format):
        return parsed.dt.convert_time_zone("UTC")
    return _localise(parsed, time_zone)


def staged_timestamp(text: pl.Expr, time_format: str, time_zone: str = "UTC") -> pl.Expr:
    """Source timestamp text → staged ISO text, keeping the raw text where it does not parse.

    Surrounding whitespace is ignored, as polars' parsers do not skip it.
    """
    parsed = parse_timestamp(text.str.strip_chars(), time_format, time_zone)
    return pl.coalesce(parsed.dt.to_string(STAGED_TIME_FORMAT), text)


def check_time_format(time_format: str) -> None:
    """Raise ``ValueError`` unless ``time_format`` is a keyword or a strftime pattern that reads
    back the date of a timestamp it formatted.

    Polars silently yields nulls (or epoch dates) for an unusable pattern such as ``%Q`` or
    ``%H``; checking up front flags the mapping instead of quarantining a whole file row by row.
    """
    if time_format in TIME_FORMAT_KEYWORDS:
        return
    moment = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    sample = pl.Series([moment], dtype=UTC_MICROS)
    try:
        rendered = sample.dt.to_string(time_format)
        parsed = parse_timestamp(pl.col("t"), time_format).alias("t")
        ok = pl.DataFrame({"t": rendered}).select(parsed.dt.date() == moment.date()).item()
    except pl.exceptions.PolarsError:
        ok = False
    if not ok:
        raise ValueError(
            f"time format {time_format!r} is neither one of {list(TIME_FORMAT_KEYWORDS)} nor a "
            "strftime pattern that can parse timestamps"
        )


def describe_time_format(time_format: str, time_zone: str = "UTC") -> str:
    """The expected time format in words, for quarantine reasons and error messages."""
    if time_format in _UNIT_SCALE:
        return (
            f"{time_format} ({'seconds' if time_format == UNIX_SECONDS else 'milliseconds'} "
            "since 1970-01-01 UTC)"
        )
    if time_format == ISO8601:
        return f"iso8601 (times without an offset are in {time_zone})"
    if _has_offset_directive(time_format):
        return f"'{time_format}'"
    return f"'{time_format}' in {time_zone}"
