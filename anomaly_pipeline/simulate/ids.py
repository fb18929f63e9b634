"""Stable, unique identifiers derived from (user number, day, sequence) without Python loops.

An id is the SplitMix64 finaliser of a packed 64-bit key. The finaliser is a bijection on 64-bit
integers, so distinct keys can never collide, and it is a pure function of the key, so the same
event gets the same id whichever run (full window or single day) produced it. Hashing rather than
printing the key keeps raw user ids out of event and session ids, which travel past the
pseudonymising staging layer.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from anomaly_pipeline.simulate.config import USER_NUMBER_BITS

DAY_BITS = 20  # date.toordinal() of any day before year 2870
SEQUENCE_BITS = 64 - USER_NUMBER_BITS - DAY_BITS
MAX_SEQUENCE = 2**SEQUENCE_BITS - 1

_SESSION_SALT = np.uint64(0x5E55_1015_C0FF_EE00)


def pack_keys(user: np.ndarray, day_ordinal: int, sequence: np.ndarray) -> np.ndarray:
    """Pack (user number, day ordinal, sequence number) into one uint64 per row."""
    if sequence.size and int(sequence.max()) > MAX_SEQUENCE:
        raise ValueError(
            f"a simulated user-day has more than {MAX_SEQUENCE} events or sessions, "
            "beyond the id space; lower the anomaly volume or activity"
        )
    return (
        (user.astype(np.uint64) << np.uint64(DAY_BITS + SEQUENCE_BITS))
        | (np.uint64(day_ordinal) << np.uint64(SEQUENCE_BITS))
        | sequence.astype(np.uint64)
    )


def splitmix64(keys: np.ndarray) -> np.ndarray:
    """The SplitMix64 output function (a bijection on uint64; wrap-around is intended)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hex_ids(prefix: str, hashed: np.ndarray) -> pl.Series:
    """``prefix`` + 16 lowercase hex digits per value, built in bulk from the big-endian bytes."""
    digits = np.frombuffer(hashed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16")
    return prefix + pl.Series(digits).cast(pl.String)


def event_ids(user: np.ndarray, day_ordinal: int, sequence: np.ndarray) -> pl.Series:
    """Event ids: hash of (user, day, position of the event in the user's day)."""
    return hex_ids("e", splitmix64(pack_keys(user, day_ordinal, sequence)))


def session_ids(user: np.ndarray, day_ordinal: int, session: np.ndarray) -> pl.Series:
    """Session ids: hash of (user, day, session number), salted apart from event ids."""
    return hex_ids("s", splitmix64(pack_keys(user, day_ordinal, session) ^ _SESSION_SALT))
