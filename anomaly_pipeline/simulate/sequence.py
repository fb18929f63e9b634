"""Lay out event sequences for many owners (sessions or actors) at once, without Python loops.

A behaviour is described as ordered *parts*; each part is a number of *units* per owner, and each
unit emits a fixed pattern of event types, optionally with some slots switched off. A normal
session, for example, is a "pre" part (signup / login / search), a body of view blocks
(search, view, click, fav, cart, coupon, purchase, review) and a "post" part (late review,
refund). ``compose`` returns every event ordered by (owner, part, unit, slot), i.e. in the order
in which the owner performs them, and remembers which part and unit produced each event so that
callers can attach unit attributes such as the item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Part:
    """Units of one part: ``owner[u]`` owns unit ``u``, which emits ``pattern`` where present."""

    owner: np.ndarray
    pattern: tuple[int, ...]
    present: np.ndarray | None = None  # (n_units, len(pattern)) bool; None = every slot

    @staticmethod
    def per_owner(counts: np.ndarray, pattern: tuple[int, ...]) -> Part:
        """``counts[i]`` units for owner ``i``, every slot present."""
        return Part(np.repeat(np.arange(len(counts)), counts), pattern)


@dataclass(frozen=True)
class Composed:
    """Events in performance order; ``part`` / ``unit`` point back to what produced them."""

    owner: np.ndarray
    etype: np.ndarray
    part: np.ndarray
    unit: np.ndarray

    def counts(self, n_owners: int) -> np.ndarray:
        """Events per owner (owners are contiguous and ordered in the composed arrays)."""
        return np.bincount(self.owner, minlength=n_owners)

    def attribute(self, per_part: list[np.ndarray | None], fill: float | int = -1) -> np.ndarray:
        """Per-event value gathered from one per-unit array per part (None = ``fill``)."""
        dtype = np.result_type(*(values.dtype for values in per_part if values is not None))
        out = np.full(len(self.etype), fill, dtype=dtype)
        for index, values in enumerate(per_part):
            if values is not None:
                rows = self.part == index
                out[rows] = values[self.unit[rows]]
        return out


def compose(parts: list[Part]) -> Composed:
    """All events of all parts, sorted by owner, then part, unit and slot."""
    owner, etype, part, unit, slot = [], [], [], [], []
    for index, p in enumerate(parts):
        present = (
            np.ones((len(p.owner), len(p.pattern)), dtype=bool) if p.present is None else p.present
        )
        unit_index, slot_index = np.nonzero(present)
        owner.append(p.owner[unit_index])
        etype.append(np.asarray(p.pattern, dtype=np.int64)[slot_index])
        part.append(np.full(len(unit_index), index, dtype=np.int64))
        unit.append(unit_index)
        slot.append(slot_index)
    columns = [np.concatenate(c).astype(np.int64) for c in (owner, etype, part, unit, slot)]
    order = np.lexsort((columns[4], columns[3], columns[2], columns[0]))
    return Composed(*(c[order] for c in columns[:4]))
