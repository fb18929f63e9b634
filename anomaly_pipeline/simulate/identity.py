"""Device ids, IP addresses, user agents and channels, and the table that stores them as codes.

Event columns that hold strings (device_id, ip, user_agent, channel) are carried through the
simulator as integer codes into a ``StringTable`` and only turned into strings once per day when
the frame is built; that keeps the per-event work in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

CHANNELS: tuple[str, ...] = ("SEO", "Ads", "Direct", "Email", "Social")
CHANNEL_WEIGHTS = np.array([0.30, 0.20, 0.25, 0.10, 0.15])

BROWSER_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.6723.102 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
)
#: Automation clients that click through pages (one per bot).
BOT_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
    "Mozilla/5.0 (compatible; Selenium/4.26; +https://www.selenium.dev)",
)
#: Crawlers that fetch item pages in bulk.
SCRAPER_USER_AGENTS: tuple[str, ...] = (
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "curl/8.11.0",
    "Go-http-client/2.0",
)

#: First octets of consumer ISP ranges and of hosting/cloud ranges (plausible, not exhaustive).
RESIDENTIAL_FIRST_OCTETS = np.array([24, 31, 46, 62, 73, 77, 82, 86, 90, 109, 151, 176, 188, 212])
CARRIER_FIRST_OCTETS = np.array([37, 92, 100, 176, 213])
DATACENTER_FIRST_OCTETS = np.array([34, 35, 52, 104, 138, 159, 165, 185])


class StringTable:
    """Append-only list of strings addressed by integer codes (-1 = null)."""

    def __init__(self, values: Sequence[str] = ()) -> None:
        self._values: list[str] = list(values)

    def add(self, values: Sequence[str]) -> np.ndarray:
        """Append ``values`` and return their codes."""
        start = len(self._values)
        self._values.extend(values)
        return np.arange(start, len(self._values), dtype=np.int64)

    def copy(self) -> StringTable:
        return StringTable(self._values)

    def series(self, codes: np.ndarray, name: str) -> pl.Series:
        """Decode ``codes`` into a string column; code -1 becomes null."""
        table = pl.Series(name, [*self._values, None], dtype=pl.String)
        return table.gather(np.where(codes < 0, len(self._values), codes))


def device_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Random opaque device ids (64 random bits: collisions are negligible)."""
    return [f"d{value:016x}" for value in rng.integers(0, 2**63, size=n, dtype=np.int64)]


def network_prefixes(rng: np.random.Generator, first_octets: np.ndarray, n: int) -> list[str]:
    """``n`` random /24 prefixes ``a.b.c`` whose first octet comes from ``first_octets``."""
    a = rng.choice(first_octets, size=n)
    b, c = rng.integers(0, 256, size=(2, n))
    return [f"{x}.{y}.{z}" for x, y, z in zip(a, b, c, strict=True)]


def hosts_in(rng: np.random.Generator, prefixes: Sequence[str]) -> list[str]:
    """One random host address inside each /24 prefix."""
    hosts = rng.integers(2, 255, size=len(prefixes))
    return [f"{prefix}.{host}" for prefix, host in zip(prefixes, hosts, strict=True)]
