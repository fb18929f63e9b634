"""dbt-duckdb plugin: the connection-level functions and settings the dbt_features SQL relies on.

Registered in ``resources/dbt/profiles.yml`` (``plugins: [{module: anomaly_pipeline.dbt_plugin}]``);
dbt-duckdb calls ``configure_connection`` on the database connection and ``configure_cursor`` on
every cursor a model runs on, so every model and test sees:

* ``pseudonymize(varchar) -> varchar`` — keyed HMAC pseudonym, equal to
  ``anomaly_pipeline.privacy.pseudonymize``;
* ``ip_network_key(varchar) -> varchar`` — pseudonym of the address's /24 (IPv4) or /48 (IPv6)
  network, NULL for a missing or invalid address (``privacy.ip_network_keys``);
* ``TimeZone = 'UTC'`` — the partition day and the night-hours feature are defined in UTC, and
  DuckDB would otherwise extract hours of a TIMESTAMPTZ in the machine's local zone.

Both functions are SQL macros over DuckDB's native SHA-256: HMAC(key, m) =
SHA256(outer_pad || SHA256(inner_pad || m)) with the two key pads (``privacy.hmac_sha256_pads``)
inlined as constants. That runs multi-threaded in C++, several times faster than the Python HMAC
it replaced, which held the GIL for ~1 µs a value. Only addresses that are not a canonical
dotted quad (IPv6, IPv4-mapped IPv6, padded or invalid text) fall back to the Python
``ip_network`` parser, through the Arrow UDF ``python_ip_network_key``.

The macros are TEMP: they live in the connection only and are never written to the warehouse
file, since their text holds the key pads (as secret as the key). The key is read once, when dbt
loads the profile, so a missing key fails the run before any model executes (see
``privacy.pseudonym_key``).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb.func import FunctionNullHandling, PythonUDFType

from anomaly_pipeline.privacy import (
    IPV4_NETWORK_PREFIX,
    PSEUDONYM_HEX_CHARS,
    hmac_sha256_pads,
    ip_network_keys,
    pseudonym_key,
)

#: A canonical dotted quad, as ``privacy.ip_network`` accepts on its fast path: four decimal
#: octets 0-255 without leading zeros or surrounding whitespace.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = rf"({_OCTET}\.){{3}}{_OCTET}"


def pseudonym_macros_sql(key: bytes) -> list[str]:
    """``CREATE TEMP MACRO`` statements of ``pseudonymize`` and ``ip_network_key`` under ``key``."""
    inner_pad, outer_pad = hmac_sha256_pads(key)
    hmac_hex = (
        f"sha256(unhex('{outer_pad.hex()}') || "
        f"unhex(sha256(unhex('{inner_pad.hex()}') || encode(identifier))))"
    )
    return [
        f"create or replace temp macro pseudonymize(identifier) as "
        f"left({hmac_hex}, {PSEUDONYM_HEX_CHARS})",
        # The /24 of a canonical dotted quad is its first three octets; anything else goes to
        # Python, which also handles IPv6 and rejects invalid text.
        f"create or replace temp macro ip_network_key(address) as "
        f"case when regexp_full_match(address, '{_DOTTED_QUAD}') "
        f"then pseudonymize(regexp_replace(address, '[0-9]+$', '0/{IPV4_NETWORK_PREFIX}')) "
        f"else python_ip_network_key(address) end",
    ]


class Plugin(BasePlugin):
    """Registers the pseudonym functions and pins the session time zone to UTC."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        """Read the pseudonym key now, so a missing key fails at profile load, not mid-run."""
        self._key = pseudonym_key()

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        key = self._key

        def python_ip_network_key(values: pa.Array) -> pa.Array:
            return pa.array(ip_network_keys(values.to_pylist(), key), type=pa.string())

        # A Python UDF is registered database-wide, so cursors see it too.
        conn.create_function(
            "python_ip_network_key",
            python_ip_network_key,
            [duckdb.sqltype("VARCHAR")],
            duckdb.sqltype("VARCHAR"),
            # SPECIAL: the function maps NULL to NULL itself and returns NULL for an invalid
            # address.
            type=PythonUDFType.ARROW,
            null_handling=FunctionNullHandling.SPECIAL,
            side_effects=False,
        )
        self._configure_session(conn)

    def configure_cursor(self, cursor: duckdb.DuckDBPyConnection) -> None:
        # Temp macros and session settings belong to one connection: each cursor needs its own.
        self._configure_session(cursor)

    def _configure_session(self, conn: duckdb.DuckDBPyConnection) -> None:
        for statement in pseudonym_macros_sql(self._key):
            conn.execute(statement)
        conn.execute("SET TimeZone = 'UTC'")
