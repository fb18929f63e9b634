"""When drift should trigger retraining: one request per drift episode, with a cooldown.

Plain logic over the sequence of drift-check outcomes, so the sensor stays a thin reader of
Dagster's event log and the policy is testable on its own. An *episode* starts with the first
failing drift check after a passing one (or after start-up) and ends at the next passing check;
a new episode inside the cooldown of the last request is ignored, so a flapping feature cannot
start a storm of training runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Self


@dataclass(frozen=True)
class DriftObservation:
    """One drift-check evaluation: its event-log id, when it happened, and whether it drifted."""

    record_id: int
    timestamp: float
    drifted: bool
    partition: str | None = None


@dataclass(frozen=True)
class RetrainingCursor:
    """What the sensor remembers between evaluations (stored as its JSON cursor)."""

    last_record_id: int = 0
    in_episode: bool = False
    last_request_ts: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Self:
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True)
class RetrainingDecision:
    request: bool
    reason: str
    cursor: RetrainingCursor
    trigger: DriftObservation | None = None


def decide_retraining(
    observations: list[DriftObservation], cursor: RetrainingCursor, *, now: float, cooldown_s: float
) -> RetrainingDecision:
    """Walk the observations newer than the cursor, oldest first; request at most one run."""
    fresh = sorted(
        (o for o in observations if o.record_id > cursor.last_record_id), key=lambda o: o.record_id
    )
    if not fresh:
        return RetrainingDecision(False, "no new drift check since the last evaluation", cursor)
    state, trigger, skipped = cursor, None, None
    for obs in fresh:
        starts_episode = obs.drifted and not state.in_episode
        state = replace(state, last_record_id=obs.record_id, in_episode=obs.drifted)
        if not starts_episode or trigger is not None:
            continue
        cooling = state.last_request_ts is not None and now - state.last_request_ts < cooldown_s
        if cooling:
            skipped = obs
        else:
            trigger = obs
            state = replace(state, last_request_ts=now)
    if trigger is not None:
        return RetrainingDecision(
            True,
            f"drift episode started at check {trigger.record_id}"
            f" ({trigger.partition or 'unpartitioned'})",
            state,
            trigger,
        )
    if skipped is not None:
        wait = cooldown_s - (now - (state.last_request_ts or now))
        return RetrainingDecision(
            False,
            f"drift episode at check {skipped.record_id} is inside "
            f"the cooldown ({wait:.0f} s left)",
            state,
        )
    reason = "drift episode already handled" if state.in_episode else "no drift"
    return RetrainingDecision(False, reason, state)
