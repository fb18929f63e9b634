"""Columnar event batches (numpy) and their conversion to the canonical polars frames.

Generators for normal users and for each anomaly emit ``EventBatch`` objects: one numpy array per
column, integers for everything that becomes a string (codes, item numbers) and -1 / NaN for
nulls. A day's batches are concatenated and turned into a ``RAW_EVENT_SCHEMA`` frame in one pass,
which is where ids, ordering and string formatting happen.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from anomaly_pipeline.schema import EVENT_TYPES, LABEL_SCHEMA, RAW_EVENT_SCHEMA
from anomaly_pipeline.simulate.catalogue import Catalogue, category_of
from anomaly_pipeline.simulate.identity import StringTable
from anomaly_pipeline.simulate.ids import event_ids, session_ids
from anomaly_pipeline.simulate.timing import DAY_SECONDS, rank_in_group

if TYPE_CHECKING:
    from polars.expr.whenthen import When

SIGNUP, LOGIN, VIEW, CLICK, SEARCH, FAV, CART, PURCHASE, REVIEW, REFUND, COUPON = (
    EVENT_TYPES.index(name)
    for name in (
        "signup",
        "login",
        "view",
        "click",
        "search",
        "fav",
        "cart",
        "purchase",
        "review",
        "refund",
        "coupon",
    )
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT_TYPE_NAMES = pl.Series("event_type", EVENT_TYPES, dtype=pl.String)


@dataclass(frozen=True)
class EventBatch:
    """Events as parallel arrays; -1 (NaN for ``amount``) marks a null value.

    ``t`` is seconds since midnight UTC of the day; ``session`` is the session number within the
    user's day; ``device``, ``ip``, ``agent`` and ``channel`` are codes into the day's
    ``StringTable``.
    """

    user: np.ndarray
    t: np.ndarray
    etype: np.ndarray
    item: np.ndarray
    category: np.ndarray
    shop: np.ndarray
    amount: np.ndarray
    quantity: np.ndarray
    rating: np.ndarray
    session: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    agent: np.ndarray
    channel: np.ndarray

    @staticmethod
    def build(
        user: np.ndarray,
        t: np.ndarray,
        etype: np.ndarray | int,
        **columns: np.ndarray | float | int,
    ) -> EventBatch:
        """A batch of ``len(t)`` events; scalars broadcast, omitted columns are null."""
        n = len(t)
        unknown = set(columns) - {f.name for f in fields(EventBatch)}
        if unknown:
            raise TypeError(f"EventBatch has no column(s) {sorted(unknown)}")
        values = {"user": user, "t": t, "etype": etype, **columns}
        arrays = {}
        for f in fields(EventBatch):
            is_float = f.name in ("t", "amount")
            default = np.nan if is_float else -1
            value = np.asarray(values.get(f.name, default))
            arrays[f.name] = np.broadcast_to(value, (n,)).astype(
                np.float64 if is_float else np.int64
            )
        return EventBatch(**arrays)

    @staticmethod
    def concat(batches: list[EventBatch]) -> EventBatch:
        return EventBatch(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(EventBatch)
            }
        )


def commerce_columns(
    catalogue: Catalogue, etype: np.ndarray, item: np.ndarray, quantity: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """item, category, shop, quantity and amount columns for events about ``item`` (-1 = none).

    One rule set for every generator: a search keeps only the item's category; carts and
    purchases carry the quantity (1 when not given); a purchase costs price × quantity and a
    refund gives back the unit price.
    """
    safe = np.maximum(item, 0)
    names_item = (item >= 0) & (etype != SEARCH)
    quantity = np.ones(len(item), dtype=np.int64) if quantity is None else quantity
    price = catalogue.item_price[safe]
    amount = np.where(
        etype == PURCHASE, np.round(price * quantity, 2), np.where(etype == REFUND, price, np.nan)
    )
    return {
        "item": np.where(names_item, item, -1),
        "category": np.where(item >= 0, category_of(safe), -1),
        "shop": np.where(names_item, catalogue.item_shop[safe], -1),
        "quantity": np.where(names_item & np.isin(etype, (CART, PURCHASE)), quantity, -1),
        "amount": np.where(names_item, amount, np.nan),
    }


def to_frame(batch: EventBatch, day: date, strings: StringTable) -> pl.DataFrame:
    """The day's events as a ``RAW_EVENT_SCHEMA`` frame sorted by event_time.

    Events outside the day are dropped. Within a user, events keep time order (generation order
    on ties) and their position in that order is the sequence number hashed into ``event_id``.
    """
    inside = (batch.t >= 0.0) & (batch.t < DAY_SECONDS)
    by_user = np.lexsort((batch.t, batch.user))
    by_user = by_user[inside[by_user]]
    user = batch.user[by_user]
    _, per_user = np.unique(user, return_counts=True)
    sequence = rank_in_group(per_user)
    day_start_us = (
        int((datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH).total_seconds())
        * 1_000_000
    )
    micros = day_start_us + np.round(batch.t[by_user] * 1e6).astype(np.int64)
    final = np.lexsort((sequence, user, micros))
    rows = by_user[final]
    user, sequence, micros = user[final], sequence[final], micros[final]
    ordinal = day.toordinal()
    raw = pl.DataFrame(
        {
            "event_id": event_ids(user, ordinal, sequence),
            "micros": micros,
            "user": user,
            "session_id": session_ids(user, ordinal, np.maximum(batch.session[rows], 0)),
            "session": batch.session[rows],
            "event_type": _EVENT_TYPE_NAMES.gather(batch.etype[rows]),
            "item": batch.item[rows],
            "category": batch.category[rows],
            "shop": batch.shop[rows],
            "amount": batch.amount[rows],
            "quantity": batch.quantity[rows],
            "device_id": strings.series(batch.device[rows], "device_id"),
            "ip": strings.series(batch.ip[rows], "ip"),
            "user_agent": strings.series(batch.agent[rows], "user_agent"),
            "channel": strings.series(batch.channel[rows], "channel"),
            "rating": batch.rating[rows],
        }
    )
    return raw.select(
        "event_id",
        pl.col("micros").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("event_time"),
        _numbered("u", "user", 6).alias("user_id"),
        _present("session").then(pl.col("session_id")).alias("session_id"),
        "event_type",
        _numbered("i", "item", 6).alias("item_id"),
        _numbered("c", "category", 3).alias("category_id"),
        _numbered("s", "shop", 4).alias("shop_id"),
        pl.col("amount").fill_nan(None),
        _present("quantity").then(pl.col("quantity")).alias("quantity"),
        "device_id",
        "ip",
        "user_agent",
        "channel",
        _present("rating").then(pl.col("rating")).alias("rating"),
    ).cast(RAW_EVENT_SCHEMA)  # type: ignore[arg-type]


def user_ids(users: np.ndarray) -> pl.Series:
    """``u`` + zero-padded user number, the population's stable user id."""
    return pl.DataFrame({"user": users}).select(_numbered("u", "user", 6)).to_series()


def labels_frame(users: np.ndarray, anomaly_types: list[str], day: date) -> pl.DataFrame:
    """LABEL_SCHEMA rows for the abnormal users of one day, sorted by user_id."""
    return pl.DataFrame(
        {
            "user_id": user_ids(users),
            "event_day": pl.Series([day] * len(users), dtype=pl.Date),
            "anomaly_type": pl.Series(anomaly_types, dtype=pl.String),
        },
        schema=LABEL_SCHEMA,
    ).sort("user_id")


def _present(column: str) -> When:
    """Start of an expression that keeps ``column``'s row only where it is not the -1 null."""
    return pl.when(pl.col(column) >= 0)


def _numbered(prefix: str, column: str, width: int) -> pl.Expr:
    """``prefix`` + zero-padded number, null where the number is -1."""
    return _present(column).then(
        pl.concat_str(pl.lit(prefix), pl.col(column).cast(pl.String).str.zfill(width))
    )
