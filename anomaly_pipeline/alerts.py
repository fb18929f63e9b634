"""Alerts: turn a day's review/block outcomes into deduplicated alerts and push them to a webhook.

An alert is raised for a user on the first day they are flagged (``review`` or ``block``) and
stays *open* for ``reopen_after_days`` days unless someone closes it; further flags of the same
user while it is open add no new alert, so on-call is not paged daily for one ongoing case. The
``alert_id`` is a hash of (user_key, raised day): re-running a day produces the same ids, and the
writer's delete-then-insert per day never duplicates.

``post_webhook`` is plain ``urllib`` (no extra dependency) with retries on connection failures
and 5xx answers only — a 4xx means the request itself is wrong and retrying cannot help. A webhook
URL often carries its credential (a token in the path or query), so no message shows more of it
than scheme and host, and what the receiver answers is redacted of the URL's parts.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import polars as pl

from anomaly_pipeline.messages import display_url, redact, url_secrets

#: Outcomes that raise an alert.
ALERTING_OUTCOMES: Final[tuple[str, ...]] = ("review", "block")
OPEN, CLOSED = "open", "closed"
DEFAULT_REOPEN_AFTER_DAYS: Final[int] = 7
#: The environment variable holding the webhook URL (alerts and run failures).
WEBHOOK_ENV: Final = "ANOMALY_PIPELINE_ALERT_WEBHOOK"
WEBHOOK_SCHEMES: Final = ("http", "https")

ALERT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "alert_id": pl.String(),
    "user_key": pl.String(),
    "event_day": pl.Date(),
    "score": pl.Float64(),
    "outcome": pl.String(),
    "reasons": pl.List(pl.String()),
    "status": pl.String(),
}
_TODAY_COLUMNS: Final = ("user_key", "event_day", "score", "outcome", "reasons")
_OPEN_COLUMNS: Final = ("user_key", "event_day", "status")


class WebhookError(RuntimeError):
    """The webhook did not accept the alerts (non-2xx answer or no connection)."""


def check_webhook_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an http(s) URL with a host (scheme in any case).

    The message shows the scheme only: the rest of a webhook URL may be its credential.
    """
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError("webhook url is not a valid URL (its port is not a number)") from None
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise ValueError(f"webhook url must be http(s), got scheme {parts.scheme.lower()[:10]!r}")
    if not parts.hostname or not port_ok:
        raise ValueError("webhook url has no host (expected http(s)://host[:port]/path)")


def empty_alerts() -> pl.DataFrame:
    """A zero-row alerts frame (``ALERT_SCHEMA``), e.g. before the alerts table exists."""
    return pl.DataFrame(schema=ALERT_SCHEMA)


def alert_id(user_key: str, raised_day: date) -> str:
    """Stable id of the alert raised for ``user_key`` on ``raised_day``."""
    return hashlib.sha256(f"{user_key}|{raised_day.isoformat()}".encode()).hexdigest()[:20]


def new_alerts(
    today: pl.DataFrame,
    open_alerts: pl.DataFrame,
    reopen_after_days: int = DEFAULT_REOPEN_AFTER_DAYS,
) -> pl.DataFrame:
    """Alerts (``ALERT_SCHEMA``, status ``open``) to raise for one scored day.

    ``today`` holds one day's scored users (user_key, event_day, score, outcome, reasons);
    ``open_alerts`` is the alerts table so far (at least user_key, event_day, status). A flagged
    user gets no new alert when an alert raised on an *earlier* day within the last
    ``reopen_after_days`` days is not closed. Alerts of the same day are ignored, so re-running
    the day returns the same alerts with the same ids.
    """
    if reopen_after_days < 1:
        raise ValueError(f"reopen_after_days must be >= 1, got {reopen_after_days}")
    _require(today, _TODAY_COLUMNS, "today")
    _require(open_alerts, _OPEN_COLUMNS, "open_alerts")
    days = today.get_column("event_day").unique()
    if today.height and (days.len() != 1 or days.null_count()):
        raise ValueError(
            "today must hold exactly one non-null event_day; got "
            f"{days.sort(nulls_last=True).to_list()}"
        )
    duplicated = today.filter(pl.col("user_key").is_duplicated()).get_column("user_key")
    if duplicated.len():
        raise ValueError(
            f"today has several rows for user_key(s) "
            f"{duplicated.unique().head(5).to_list()}; expected one per user"
        )
    unknown = set(today.get_column("outcome").unique().to_list()) - {"allow", *ALERTING_OUTCOMES}
    if unknown:
        raise ValueError(
            f"today.outcome holds unknown value(s) {sorted(map(str, unknown))}; "
            "expected allow, review or block"
        )
    flagged = today.filter(pl.col("outcome").is_in(ALERTING_OUTCOMES))
    if flagged.is_empty():
        return empty_alerts()
    day: date = days.item()
    still_open = (
        open_alerts.filter(
            (pl.col("event_day") < day)
            & (pl.col("event_day") > day - timedelta(days=reopen_after_days))
            & (pl.col("status") != CLOSED).fill_null(True)
        )
        .select("user_key")
        .unique()
    )
    raised = flagged.join(still_open, on="user_key", how="anti").sort("user_key")
    return raised.select(
        pl.Series(
            "alert_id", [alert_id(u, day) for u in raised.get_column("user_key")], dtype=pl.String
        ),
        pl.col("user_key").cast(pl.String),
        pl.col("event_day").cast(pl.Date),
        pl.col("score").cast(pl.Float64),
        pl.col("outcome").cast(pl.String),
        pl.col("reasons").cast(pl.List(pl.String)),
        pl.lit(OPEN).alias("status"),
    )


def alert_payload(alerts: pl.DataFrame) -> dict[str, Any]:
    """JSON-ready webhook body: a one-line ``text`` summary (what chat webhooks display) plus
    every alert with its id, user, day, score, outcome and reasons."""
    _require(alerts, tuple(c for c in ALERT_SCHEMA if c != "status"), "alerts")
    counts = {o: alerts.filter(pl.col("outcome") == o).height for o in ("block", "review")}
    days = sorted(d.isoformat() for d in alerts.get_column("event_day").unique().drop_nulls())
    text = (
        f"{alerts.height} new anomaly alert(s) for {', '.join(days) or 'no day'}: "
        f"{counts['block']} block, {counts['review']} review"
    )
    rows = alerts.sort(["outcome", "score"], descending=[False, True]).iter_rows(named=True)
    return {
        "text": text,
        "alert_count": alerts.height,
        "counts": counts,
        "event_days": days,
        "alerts": [
            {
                "alert_id": r["alert_id"],
                "user_key": r["user_key"],
                "event_day": r["event_day"].isoformat(),
                "score": r["score"],
                "outcome": r["outcome"],
                "reasons": list(r["reasons"] or []),
            }
            for r in rows
        ],
    }


def post_webhook(
    url: str,
    payload: Mapping[str, Any],
    timeout: float = 5.0,
    retries: int = 2,
    backoff_s: float = 0.5,
) -> int:
    """POST ``payload`` as JSON to ``url``; return the (2xx) HTTP status.

    Connection failures and 5xx answers are retried ``retries`` times with exponential backoff
    (``backoff_s``, doubled each time); a 4xx fails at once. Raises ``WebhookError`` naming the
    endpoint (scheme and host only), the attempts and the last status/body or connection error,
    with every part of the URL that may be a credential redacted.
    """
    check_webhook_url(url)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    body = json.dumps(payload, default=str).encode("utf-8")
    endpoint, secrets = display_url(url), url_secrets(url)
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "anomaly-pipeline",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", errors="replace").strip()
            last_error = redact(
                f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""), secrets
            )
            if exc.code < 500:
                # ``from None``: the chained urllib error would print the full URL in tracebacks.
                raise WebhookError(f"POST {endpoint} rejected: {last_error}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = redact(f"connection failed: {reason}", secrets)
    raise WebhookError(f"POST {endpoint} failed after {retries + 1} attempt(s): {last_error}")


def _require(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {frame.columns}")
