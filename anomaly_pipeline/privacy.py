"""Keyed pseudonyms for the identifiers that must not travel past staging.

Raw user ids, device ids and IP addresses are personal data. Staging replaces each of them by an
HMAC-SHA256 of the value under a secret key, so:

* the same id always gets the same pseudonym (joins across days and tables still work);
* without the key nobody can recompute a pseudonym from a guessed id (a plain hash of a phone
  number or an IPv4 address is brute-forced in minutes; a keyed hash is not);
* rotating the key unlinks every pseudonym at once.

Pseudonyms are the first 32 hex characters (128 bits) of the HMAC: far beyond any collision risk
for the number of ids a shop sees, and half the storage of the full 64-character digest.

IP addresses are also reduced to their network (/24 for IPv4, /48 for IPv6) before being
pseudonymised for the "shared network" features: hosts behind one NAT or one mobile carrier block
share the network, which is what abuse detection needs, without keeping the host address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable
from typing import Final

PSEUDONYM_KEY_ENV: Final = "ANOMALY_PIPELINE_PSEUDONYM_KEY"
DEMO_ENV: Final = "ANOMALY_PIPELINE_DEMO"

#: Used only when ``ANOMALY_PIPELINE_DEMO=1`` and no key is configured. It is public (it is in this
#: file), so pseudonyms made with it protect nothing: never use it for real data.
DEMO_PSEUDONYM_KEY: Final = b"anomaly-pipeline-demo-key--not-a-secret"
#: The placeholder value of ``resources/env.example`` (a test keeps the two equal).
ENV_EXAMPLE_PLACEHOLDER: Final = b"change-me-to-a-long-random-secret"
#: Keys anyone can read in this repository: refused outside demo mode.
PUBLIC_KEYS: Final = frozenset({DEMO_PSEUDONYM_KEY, ENV_EXAMPLE_PLACEHOLDER})

#: A key shorter than this is rejected: HMAC's strength is bounded by the key's entropy.
MIN_KEY_BYTES: Final = 16

#: Hex characters kept from the HMAC-SHA256 digest (128 bits).
PSEUDONYM_HEX_CHARS: Final = 32

IPV4_NETWORK_PREFIX: Final = 24
IPV6_NETWORK_PREFIX: Final = 48


class PseudonymKeyError(RuntimeError):
    """The pseudonym key is missing or too weak."""


def pseudonym_key() -> bytes:
    """The secret key for pseudonyms, from ``$ANOMALY_PIPELINE_PSEUDONYM_KEY`` (UTF-8 bytes).

    When the variable is unset, the public demo key is returned only if ``ANOMALY_PIPELINE_DEMO=1``:
    silently falling back to a known key would make every "pseudonym" reversible in production.
    For the same reason a public key (``PUBLIC_KEYS``: the demo key, the ``env.example``
    placeholder) is refused outside demo mode. Messages never show the key.
    """
    configured = os.environ.get(PSEUDONYM_KEY_ENV)
    demo = os.environ.get(DEMO_ENV) == "1"
    if configured is None or configured == "":
        if demo:
            return DEMO_PSEUDONYM_KEY
        raise PseudonymKeyError(
            f"{PSEUDONYM_KEY_ENV} is not set: set it to a secret of at least {MIN_KEY_BYTES} "
            f"characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), "
            f"or set {DEMO_ENV}=1 to use the public demo key on demo data only"
        )
    key = configured.encode("utf-8")
    if key in PUBLIC_KEYS and not demo:
        raise PseudonymKeyError(
            f"{PSEUDONYM_KEY_ENV} is a public value from this repository (the demo key or the "
            "env.example placeholder), so its pseudonyms protect nothing: set a secret of your "
            f"own, or set {DEMO_ENV}=1 for demo data only"
        )
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"{PSEUDONYM_KEY_ENV} is {len(key)} bytes long; it must be at least {MIN_KEY_BYTES}"
        )
    return key


def pseudonymize(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value`` (UTF-8) under ``key``, as 32 lowercase hex characters."""
    return hmac.digest(key, value.encode("utf-8"), hashlib.sha256).hex()[:PSEUDONYM_HEX_CHARS]


def pseudonymize_many(values: Iterable[str | None], key: bytes) -> list[str | None]:
    """``pseudonymize`` over many values, keeping ``None`` as ``None`` (for batch callers).

    Equal to calling ``pseudonymize`` per value, but about twice as fast: the HMAC's keyed inner
    and outer SHA-256 states (RFC 2104) are computed once and copied per value instead of
    re-deriving them from the key on every call.
    """
    inner_pad, outer_pad = hmac_sha256_pads(key)
    inner_state, outer_state = hashlib.sha256(inner_pad), hashlib.sha256(outer_pad)
    pseudonyms: list[str | None] = []
    append = pseudonyms.append
    for value in values:
        if value is None:
            append(None)
            continue
        inner = inner_state.copy()
        inner.update(value.encode("utf-8"))
        outer = outer_state.copy()
        outer.update(inner.digest())
        append(outer.hexdigest()[:PSEUDONYM_HEX_CHARS])
    return pseudonyms


def hmac_sha256_pads(key: bytes) -> tuple[bytes, bytes]:
    """The two 64-byte HMAC-SHA256 key blocks, ``key XOR ipad`` and ``key XOR opad`` (RFC 2104).

    HMAC(key, m) = SHA256(outer_pad || SHA256(inner_pad || m)). Exposed so that an engine with
    a native SHA-256 (the DuckDB macro of ``anomaly_pipeline.dbt_plugin``) computes exactly the
    same pseudonyms as ``pseudonymize``. The pads are as secret as the key itself.
    """
    block_size = hashlib.sha256().block_size
    if len(key) > block_size:
        key = hashlib.sha256(key).digest()
    block = key.ljust(block_size, b"\0")
    return bytes(byte ^ 0x36 for byte in block), bytes(byte ^ 0x5C for byte in block)


def ip_network(ip: str | None) -> str | None:
    """The network of an address in CIDR form: /24 for IPv4, /48 for IPv6; ``None`` if invalid.

    IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) count as the IPv4 address they carry, so the
    same client gets the same network whichever way a proxy logged it.
    """
    if ip is None:
        return None
    ip = ip.strip()
    octets = ip.split(".")
    if len(octets) == 4 and all(_is_octet(octet) for octet in octets):
        # Fast path for the common dotted quad: ``ipaddress`` costs ~10x more per call and batch
        # callers run this over every distinct address of a day.
        return f"{octets[0]}.{octets[1]}.{octets[2]}.0/{IPV4_NETWORK_PREFIX}"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_NETWORK_PREFIX if address.version == 4 else IPV6_NETWORK_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _is_octet(text: str) -> bool:
    """A canonical decimal IPv4 octet: 0-255 without leading zeros (as ``ipaddress`` demands)."""
    return (
        0 < len(text) <= 3
        and text.isascii()
        and text.isdigit()
        and (text == "0" or text[0] != "0")
        and int(text) <= 255
    )


def ip_network_keys(ips: Iterable[str | None], key: bytes) -> list[str | None]:
    """Pseudonymised networks of many addresses; ``None`` where the address is missing/invalid."""
    return pseudonymize_many((ip_network(ip) for ip in ips), key)
