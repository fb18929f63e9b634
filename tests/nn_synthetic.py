"""Small synthetic data sets for the neural detector tests (tabular user-days and sequences)."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from anomaly_pipeline.schema import EVENT_TYPES

TOKEN = {name: index + 1 for index, name in enumerate(EVENT_TYPES)}
#: A shopper's next action given the current one: browsing funnels with some randomness.
_FUNNEL = {
    "login": {"view": 0.7, "search": 0.3},
    "search": {"view": 0.8, "search": 0.2},
    "view": {"click": 0.45, "view": 0.15, "search": 0.15, "cart": 0.15, "fav": 0.1},
    "click": {"view": 0.6, "cart": 0.3, "fav": 0.1},
    "fav": {"view": 0.7, "cart": 0.3},
    "cart": {"purchase": 0.5, "view": 0.5},
    "purchase": {"view": 0.6, "review": 0.4},
    "review": {"view": 1.0},
}


def low_rank_table(
    rng: np.random.Generator, n_rows: int, n_features: int = 12, rank: int = 3, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``W·z + noise`` on a fixed rank-``rank`` plane; ``shift`` moves z_0 (a labelled shape).

    Returns the rows and their latent codes. The plane (``W``) is fixed by a constant seed so
    every call shares it.
    """
    weights = np.random.default_rng(1234).normal(size=(rank, n_features))
    codes = rng.normal(size=(n_rows, rank))
    codes[:, 0] += shift
    rows = codes @ weights + 0.1 * rng.normal(size=(n_rows, n_features))
    return rows.astype(np.float32), codes


def funnel_tokens(rng: np.random.Generator, length: int) -> list[int]:
    """One shopper's session as event tokens, starting at login."""
    state, out = "login", [TOKEN["login"]]
    while len(out) < length:
        choices = _FUNNEL[state]
        state = str(rng.choice(list(choices), p=list(choices.values())))
        out.append(TOKEN[state])
    return out


def sequence_frame(
    token_lists: list[list[int]], max_len: int, gap_of: float = 3.0, pad_left: bool = False
) -> pl.DataFrame:
    """A behaviour_sequences-like frame from token lists (padded to ``max_len``)."""
    rows = []
    for tokens in token_lists:
        tokens = tokens[-max_len:]
        pad = [0] * (max_len - len(tokens))
        gaps = ([0.0] + [gap_of] * (len(tokens) - 1))[: len(tokens)]
        changes = ([0] + [int(a != b) for a, b in itertools.pairwise(tokens)])[: len(tokens)]
        if pad_left:
            rows.append((pad + tokens, [0.0] * len(pad) + gaps, pad + changes))
        else:
            rows.append((tokens + pad, gaps + [0.0] * len(pad), changes + pad))
    return pl.DataFrame(
        {
            "tokens": [r[0] for r in rows],
            "log_gaps": [r[1] for r in rows],
            "category_change": [r[2] for r in rows],
        },
        schema={
            "tokens": pl.List(pl.Int64),
            "log_gaps": pl.List(pl.Float64),
            "category_change": pl.List(pl.Int64),
        },
    )
