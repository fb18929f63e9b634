"""Text for error messages that must not leak what a file holds or what a secret is.

Why one module: error messages end up in the Dagster event log, in run-failure alerts and in chat
channels, which more people read than may read a configuration file or hold the webhook token.
So messages name keys (cut short), never a file's values; quote YAML errors by position, never by
the offending line; and show a URL as its scheme and host only. ``redact`` is the last line of
defence for text that came from elsewhere (an exception chain, an HTTP answer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import yaml

SHOWN_CHARS: Final = 40
SHOWN_KEYS: Final = 5
REDACTED: Final = "[redacted]"
#: URL parts at least this long are redacted wherever they appear (tokens are long; short path
#: words such as "hooks" are not secrets and redacting them would garble messages).
_MIN_SECRET_PART: Final = 8


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text for a message, cut to ``limit`` characters."""
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def shown_keys(keys: Iterable[object]) -> str:
    """Up to ``SHOWN_KEYS`` keys, each cut short, and how many more there are."""
    keys = [shown(key) for key in keys]
    listed = ", ".join(repr(key) for key in keys[:SHOWN_KEYS])
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return f"[{listed}]{more}"


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what a YAML error is, without the snippet of the file PyYAML quotes."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where} ({shown(problem, 80)})"


def display_url(url: str) -> str:
    """``scheme://host[:port]/…``: enough to tell which endpoint, nothing of its credentials,
    path tokens or query."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unparsable port
        return f"{REDACTED} URL"
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme.lower() or '?'}://{host}{port}{rest}"


def url_secrets(url: str) -> list[str]:
    """Parts of ``url`` that may be credentials: the URL itself, user info, path, query, fragment
    and every long path segment or query value."""
    if not url:
        return []
    parts = urlsplit(url.strip())
    candidates = [
        url,
        url.strip(),
        parts.netloc.rpartition("@")[0],
        parts.path,
        parts.query,
        parts.fragment,
        parts.password or "",
        *parts.path.split("/"),
        *(value for _, value in parse_qsl(parts.query)),
    ]
    return [c for c in candidates if len(c) >= _MIN_SECRET_PART and c not in ("/", "")]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (longest first) replaced by ``REDACTED``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    return text
