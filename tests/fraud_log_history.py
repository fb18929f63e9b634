"""A generated "signup + purchase" fraud log, as such exports come: ``M/D/YYYY H:MM`` times,
extra columns (sex, age, class), no event ids — for the onboarding tests and `make onboard`.

Normal users buy hours to weeks after signing up from their own device; a fraud ring (class 1)
signs up and buys within a minute or two, several accounts per device, with high amounts.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

FRAUD_LOG_HEADER = (
    "user_id",
    "signup_time",
    "purchase_time",
    "purchase_value",
    "device_id",
    "source",
    "browser",
    "sex",
    "age",
    "ip_address",
    "class",
)


def _us_time(moment: datetime) -> str:
    """``M/D/YYYY H:MM`` without leading zeros, as US spreadsheet exports write it."""
    return f"{moment.month}/{moment.day}/{moment.year} {moment.hour}:{moment.minute:02d}"


def write_fraud_log(
    path: Path, *, rows: int, start: datetime, days: int, seed: int = 11, fraud_share: float = 0.05
) -> Path:
    """Write ``rows`` rows whose signups spread over ``days`` days from ``start``."""
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FRAUD_LOG_HEADER)
        for user in range(rows):
            fraud = rng.random() < fraud_share
            signup = start + timedelta(seconds=rng.uniform(0, span - 3600))
            delay = (
                timedelta(seconds=rng.uniform(5, 120))
                if fraud
                else timedelta(hours=rng.expovariate(1 / 60))
            )
            purchase = min(signup + delay, start + timedelta(seconds=span - 60))
            device = f"RING{rng.randrange(max(rows // 200, 1)):04d}" if fraud else f"D{user:07d}"
            writer.writerow(
                [
                    100000 + user,
                    _us_time(signup),
                    _us_time(max(purchase, signup)),
                    rng.randint(60, 150) if fraud else rng.randint(9, 80),
                    device,
                    rng.choice(("SEO", "Ads", "Direct")),
                    rng.choice(("Chrome", "Safari", "FireFox")),
                    rng.choice("MF"),
                    rng.randint(18, 70),
                    rng.uniform(1e8, 4e9),
                    int(fraud),
                ]
            )
    return path
