"""Alerts: deduplication against open alerts, stable ids, payload, and a real webhook POST."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from anomaly_pipeline.alerts import (
    ALERT_SCHEMA,
    WebhookError,
    alert_id,
    alert_payload,
    empty_alerts,
    new_alerts,
    post_webhook,
)
from anomaly_pipeline.defs.resources import AlertWebhookResource

DAY = date(2026, 11, 10)


def _today(day: date = DAY) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_key": ["a", "b", "c", "d", "e"],
            "event_day": [day] * 5,
            "score": [950.0, 850.0, 100.0, 990.0, 820.0],
            "outcome": ["block", "review", "allow", "block", "review"],
            "reasons": [
                ["device shared by 5 users today"],
                ["312 distinct items viewed"],
                [],
                ["purchase 42 s after signup"],
                [],
            ],
        }
    )


def _existing(rows: list[tuple[str, date, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "alert_id": [alert_id(u, d) for u, d, _ in rows],
            "user_key": [u for u, _, _ in rows],
            "event_day": [d for _, d, _ in rows],
            "score": [900.0] * len(rows),
            "outcome": ["block"] * len(rows),
            "reasons": [[] for _ in rows],
            "status": [s for _, _, s in rows],
        },
        schema=ALERT_SCHEMA,
    )


def test_only_review_and_block_users_are_alerted() -> None:
    alerts = new_alerts(_today(), empty_alerts())
    assert alerts.schema == pl.Schema(ALERT_SCHEMA)
    assert alerts["user_key"].to_list() == ["a", "b", "d", "e"]
    assert set(alerts["status"]) == {"open"}
    assert alerts["alert_id"].to_list() == [alert_id(u, DAY) for u in ["a", "b", "d", "e"]]


def test_open_alerts_from_earlier_days_suppress_new_ones() -> None:
    existing = _existing(
        [
            ("a", date(2026, 11, 4), "open"),  # 6 days ago: still open -> suppressed
            ("b", date(2026, 11, 3), "open"),  # 7 days ago: expired -> new alert
            ("d", date(2026, 11, 9), "closed"),  # closed -> new alert
            ("e", date(2026, 11, 8), "acknowledged"),  # any status but closed is open
        ]
    )
    alerts = new_alerts(_today(), existing)
    assert alerts["user_key"].to_list() == ["b", "d"]
    assert new_alerts(_today(), existing, reopen_after_days=3)["user_key"].to_list() == [
        "a",
        "b",
        "d",
    ]


def test_rerunning_a_day_returns_the_same_alerts() -> None:
    first = new_alerts(_today(), empty_alerts())
    # the day's own alerts are already stored: a rerun must reproduce them, not drop them
    again = new_alerts(
        _today(), pl.concat([_existing([("a", date(2026, 11, 1), "closed")]), first])
    )
    assert again.equals(first)


def test_bad_input_is_named() -> None:
    two_days = pl.concat([_today(), _today(date(2026, 11, 11))])
    with pytest.raises(ValueError, match="exactly one non-null event_day"):
        new_alerts(two_days, empty_alerts())
    with pytest.raises(ValueError, match=r"today lacks column\(s\) \['reasons'\]"):
        new_alerts(_today().drop("reasons"), empty_alerts())
    with pytest.raises(ValueError, match=r"several rows for user_key\(s\) \['a'\]"):
        new_alerts(pl.concat([_today(), _today().head(1)]), empty_alerts())
    with pytest.raises(ValueError, match=r"unknown value\(s\) \['deny'\]"):
        new_alerts(_today().with_columns(outcome=pl.lit("deny")), empty_alerts())


def test_payload_summarises_and_lists_alerts() -> None:
    payload = alert_payload(new_alerts(_today(), empty_alerts()))
    assert payload["text"] == "4 new anomaly alert(s) for 2026-11-10: 2 block, 2 review"
    assert payload["counts"] == {"block": 2, "review": 2}
    assert [a["user_key"] for a in payload["alerts"]] == ["d", "a", "b", "e"]
    assert payload["alerts"][0]["reasons"] == ["purchase 42 s after signup"]
    json.dumps(payload)  # JSON-ready as is


class _Recorder(BaseHTTPRequestHandler):
    """/ok answers 200, /fail always 500, /flaky 500 once then 204, /bad 400, /token/<t> 403
    quoting the path it was called on (as real receivers do in their error pages)."""

    def do_POST(self) -> None:
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append((self.path, self.headers["Content-Type"], json.loads(body)))
        hits = sum(1 for p, _, _ in server.requests if p == self.path)
        route = "/token" if self.path.startswith("/token/") else self.path.split("?")[0]
        status = {
            "/ok": 200,
            "/fail": 500,
            "/bad": 400,
            "/token": 403,
            "/flaky": 500 if hits == 1 else 204,
        }[route]
        self.send_response(status)
        self.end_headers()
        if status >= 400:
            self.wfile.write(
                f"nope: no access to {self.path}".encode() if route == "/token" else b"nope"
            )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_webhook_posts_json(server: ThreadingHTTPServer) -> None:
    payload = alert_payload(new_alerts(_today(), empty_alerts()))
    assert post_webhook(_url(server, "/ok"), payload) == 200
    path, content_type, body = server.requests[0]  # type: ignore[attr-defined]
    assert (path, content_type) == ("/ok", "application/json; charset=utf-8")
    assert body == payload


def test_webhook_retries_server_errors(server: ThreadingHTTPServer) -> None:
    assert post_webhook(_url(server, "/flaky"), {"x": 1}, backoff_s=0) == 204
    with pytest.raises(WebhookError, match=r"failed after 3 attempt\(s\): HTTP 500 .*nope"):
        post_webhook(_url(server, "/fail"), {"x": 1}, retries=2, backoff_s=0)
    assert sum(1 for p, _, _ in server.requests if p == "/fail") == 3  # type: ignore[attr-defined]


def test_webhook_client_errors_are_not_retried(server: ThreadingHTTPServer) -> None:
    with pytest.raises(WebhookError, match="rejected: HTTP 400"):
        post_webhook(_url(server, "/bad"), {"x": 1}, backoff_s=0)
    assert len(server.requests) == 1  # type: ignore[attr-defined]


def test_webhook_refused_connection() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WebhookError, match=r"failed after 2 attempt\(s\): connection failed"):
        post_webhook(f"http://127.0.0.1:{port}/hook", {"x": 1}, retries=1, backoff_s=0, timeout=2.0)
    with pytest.raises(ValueError, match="must be http"):
        post_webhook("file:///etc/passwd", {})
    with pytest.raises(ValueError, match="must be http"):
        post_webhook("ftp://127.0.0.1/x", {})


TOKEN = "T0KEN-s3cr3t-abcdef123456"


def test_webhook_tokens_never_appear_in_errors(server: ThreadingHTTPServer) -> None:
    with pytest.raises(WebhookError) as rejected:
        post_webhook(_url(server, f"/token/{TOKEN}?sig={TOKEN}x"), {"x": 1}, backoff_s=0)
    message = str(rejected.value)
    assert "rejected: HTTP 403" in message and "no access to [redacted]" in message
    assert TOKEN not in message and "127.0.0.1" in message
    assert rejected.value.__cause__ is None and rejected.value.__suppress_context__
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WebhookError) as refused:
        post_webhook(f"https://user:{TOKEN}@127.0.0.1:{port}/hooks/{TOKEN}", {}, retries=0)
    assert TOKEN not in str(refused.value) and f"https://127.0.0.1:{port}/…" in str(refused.value)


def test_webhook_scheme_is_checked_case_insensitively_when_the_resource_is_built(
    server: ThreadingHTTPServer,
) -> None:
    resource = AlertWebhookResource(url=_url(server, "/ok").replace("http://", "HTTP://"))
    assert post_webhook(resource.url, {"x": 1}) == 200
    assert TOKEN not in repr(AlertWebhookResource(url=f"https://h.example/{TOKEN}"))
    for bad, problem in (
        (f"ftp://user:{TOKEN}@files.example/{TOKEN}", "got scheme 'ftp'"),
        (f"https:///{TOKEN}", "has no host"),
    ):
        with pytest.raises(ValueError) as error:  # pydantic's ValidationError is a ValueError
            AlertWebhookResource(url=bad)
        assert problem in str(error.value) and TOKEN not in str(error.value)
