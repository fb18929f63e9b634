"""Drift episodes → retraining requests: one per episode, none inside the cooldown."""

from anomaly_pipeline.retraining import DriftObservation, RetrainingCursor, decide_retraining

HOUR = 3600.0


def obs(record_id: int, drifted: bool) -> DriftObservation:
    return DriftObservation(
        record_id=record_id,
        timestamp=float(record_id),
        drifted=drifted,
        partition=f"2026-11-{record_id:02d}",
    )


def test_first_drifted_check_after_calm_days_requests_once() -> None:
    decision = decide_retraining(
        [obs(1, False), obs(2, False), obs(3, True)],
        RetrainingCursor(),
        now=100 * HOUR,
        cooldown_s=24 * HOUR,
    )
    assert decision.request and decision.trigger == obs(3, True)
    assert decision.cursor.in_episode and decision.cursor.last_record_id == 3


def test_an_ongoing_episode_requests_nothing_more() -> None:
    first = decide_retraining([obs(1, True)], RetrainingCursor(), now=0.0, cooldown_s=HOUR)
    again = decide_retraining(
        [obs(1, True), obs(2, True), obs(3, True)], first.cursor, now=10 * HOUR, cooldown_s=HOUR
    )
    assert first.request and not again.request
    assert "already handled" in again.reason


def test_no_new_check_requests_nothing() -> None:
    first = decide_retraining([obs(1, True)], RetrainingCursor(), now=0.0, cooldown_s=HOUR)
    again = decide_retraining([obs(1, True)], first.cursor, now=1.0, cooldown_s=HOUR)
    assert not again.request and again.cursor == first.cursor


def test_new_episode_inside_cooldown_is_skipped_and_after_it_requests() -> None:
    first = decide_retraining([obs(1, True)], RetrainingCursor(), now=0.0, cooldown_s=24 * HOUR)
    calm_then_drift = [obs(1, True), obs(2, False), obs(3, True)]
    inside = decide_retraining(calm_then_drift, first.cursor, now=2 * HOUR, cooldown_s=24 * HOUR)
    assert not inside.request and "cooldown" in inside.reason
    later = [*calm_then_drift, obs(4, False), obs(5, True)]
    after = decide_retraining(later, inside.cursor, now=30 * HOUR, cooldown_s=24 * HOUR)
    assert after.request and after.trigger == obs(5, True)


def test_many_episodes_in_one_tick_give_one_request() -> None:
    history = [obs(1, True), obs(2, False), obs(3, True), obs(4, False), obs(5, True)]
    decision = decide_retraining(history, RetrainingCursor(), now=0.0, cooldown_s=0.0)
    assert decision.request and decision.trigger == obs(1, True)
    assert decision.cursor.last_record_id == 5


def test_cursor_round_trips_through_json() -> None:
    cursor = RetrainingCursor(last_record_id=7, in_episode=True, last_request_ts=12.5)
    assert RetrainingCursor.from_json(cursor.to_json()) == cursor
    assert RetrainingCursor.from_json(None) == RetrainingCursor()
