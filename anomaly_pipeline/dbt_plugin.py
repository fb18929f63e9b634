"""dbt-duckdb plugin: the connection-level functions and settings the dbt_features SQL relies on.

Registered in ``resources/dbt/profiles.yml`` (``plugins: [{module: anomaly_pipeline.dbt_plugin}]``);
dbt-duckdb calls ``configure_connection`` on every connection it opens, so every model and test
sees:

* ``pseudonymize(varchar) -> varchar`` — keyed HMAC pseudonym (``anomaly_pipeline.privacy``);
* ``ip_network_key(varchar) -> varchar`` — pseudonym of the address's /24 (IPv4) or /48 (IPv6)
  network, NULL for a missing or invalid address;
* ``TimeZone = 'UTC'`` — the partition day and the night-hours feature are defined in UTC, and
  DuckDB would otherwise extract hours of a TIMESTAMPTZ in the machine's local zone.

Both functions are Arrow UDFs: DuckDB hands them whole vectors, so the per-call Python overhead is
paid per ~2048 values rather than per value. They are still Python HMACs (≈1 µs a value), which is
why staging applies them to the *distinct* ids of a partition and joins the pseudonyms back.
The key is read once, when dbt loads the profile, so a missing key fails the run before any model
executes (see ``privacy.pseudonym_key``).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin

from anomaly_pipeline.privacy import ip_network_keys, pseudonym_key, pseudonymize_many


class Plugin(BasePlugin):
    """Registers the pseudonym UDFs and pins the session time zone to UTC."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        """Read the pseudonym key now, so a missing key fails at profile load, not mid-run."""
        self._key = pseudonym_key()

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        key = self._key

        def pseudonymize(values: pa.Array) -> pa.Array:
            return pa.array(pseudonymize_many(values.to_pylist(), key), type=pa.string())

        def ip_network_key(values: pa.Array) -> pa.Array:
            return pa.array(ip_network_keys(values.to_pylist(), key), type=pa.string())

        for name, function in (("pseudonymize", pseudonymize), ("ip_network_key", ip_network_key)):
            conn.create_function(
                name, function, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                # SPECIAL: the functions map NULL to NULL themselves, and ip_network_key must be
                # allowed to return NULL for an invalid address.
                type="arrow", null_handling="special", side_effects=False,
            )
        conn.execute("SET TimeZone = 'UTC'")
