"""The persistent user population: who the users are and how each one habitually behaves.

Everything here is drawn once per config from the seed, so a user keeps the same devices, home IP,
time zone, tastes and activity level on every day, and a single day can be simulated without
replaying the days before it. Traits that change over the window (a signup, a new phone) are
stored as the day they happen rather than as state that evolves day by day, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomaly_pipeline.simulate.catalogue import N_CATEGORIES
from anomaly_pipeline.simulate.config import SimulationConfig
from anomaly_pipeline.simulate.identity import (
    BROWSER_USER_AGENTS,
    CARRIER_FIRST_OCTETS,
    CHANNEL_WEIGHTS,
    CHANNELS,
    RESIDENTIAL_FIRST_OCTETS,
    StringTable,
    device_ids,
    hosts_in,
    network_prefixes,
)
from anomaly_pipeline.simulate.timing import DAY_SECONDS, DAYTIME, NIGHT_OWL, local_times, to_utc

# Personas: legitimate users whose behaviour is unusual, so detectors can raise false positives.
REGULAR, BULK_BUYER, NIGHT_OWL_USER, HEAVY_BROWSER = 0, 1, 2, 3
PERSONA_SHARES = np.array([0.90, 0.015, 0.06, 0.025])

NEVER = 10**6  # a day index that no window reaches
IN_WINDOW_SIGNUP_SHARE = 0.03  # users who sign up during the window
SECOND_DEVICE_SHARE = 0.4
PHONE_CHANGE_SHARE = 0.03  # users who switch to a new phone during the window
HOUSEHOLD_SHARE = 0.08  # users who share their home IP with the previous user
USERS_PER_NETWORK = 2  # on average; some /24s host several users, most one or two
N_CARRIER_NETWORKS = 24
ROAMING_IPS = 1500
ESTABLISHED_AFTER_DAYS = 30  # account age that makes a user a takeover target
PREFERRED_CATEGORIES = 3
TIME_ZONES = np.array([0.0, 1.0, 2.0, -5.0, 8.0])
TIME_ZONE_SHARES = np.array([0.20, 0.55, 0.12, 0.08, 0.05])


@dataclass(frozen=True)
class Population:
    """Per-user arrays indexed by user number (``u000123`` is user 123)."""

    signup_day: np.ndarray  # day index of the signup (negative = before the window)
    signup_second: np.ndarray  # UTC second of the signup within its day
    first_purchase_day: np.ndarray  # day index of the first purchase of in-window signups, else -1
    p_active: np.ndarray  # chance of being active on a given day
    session_rate: np.ndarray  # mean number of extra sessions on an active day
    views_per_session: np.ndarray  # mean item views per session
    dwell_scale: np.ndarray  # multiplies the typical dwell times (slow vs quick readers)
    cart_rate: np.ndarray  # chance that a viewed item goes to the cart
    buy_rate: np.ndarray  # chance that a carted item is bought
    quantity_mean: np.ndarray  # mean quantity per purchase
    persona: np.ndarray
    tz_hours: np.ndarray
    preferred_categories: np.ndarray  # (n_users, PREFERRED_CATEGORIES)
    channel: np.ndarray  # code of the preferred channel
    devices: np.ndarray  # (n_users, 2) device codes, -1 when the user has one device
    device_agents: np.ndarray  # (n_users, 2) user-agent codes of those devices
    phone_change_day: np.ndarray  # day index from which ``new_phone`` replaces device 0
    new_phone: np.ndarray
    new_phone_agent: np.ndarray
    home_ip: np.ndarray
    home_network: np.ndarray  # index into ``network_prefixes``
    network_prefixes: tuple[str, ...]
    roaming_ips: np.ndarray  # codes of mobile-carrier addresses anyone may roam onto
    channel_codes: np.ndarray  # codes of CHANNELS, in order
    browser_agents: np.ndarray  # codes of BROWSER_USER_AGENTS
    strings: StringTable

    @property
    def n_users(self) -> int:
        return len(self.signup_day)

    def established(self, day_index: int) -> np.ndarray:
        """Users whose account is old enough to have a history worth taking over."""
        return self.signup_day <= day_index - ESTABLISHED_AFTER_DAYS

    def primary_device(self, day_index: int, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(device code, user-agent code) of each user's main device on that day."""
        changed = self.phone_change_day[users] <= day_index
        device = np.where(changed, self.new_phone[users], self.devices[users, 0])
        agent = np.where(changed, self.new_phone_agent[users], self.device_agents[users, 0])
        return device, agent


def build_population(config: SimulationConfig) -> Population:
    """Draw the population of ``config`` (depends on the seed, size and window only)."""
    rng = np.random.default_rng([config.seed, 0])
    n = config.n_users
    strings = StringTable()
    channel_codes = strings.add(CHANNELS)
    agent_codes = strings.add(BROWSER_USER_AGENTS)

    in_window = rng.random(n) < IN_WINDOW_SIGNUP_SHARE
    signup_day = np.where(
        in_window, rng.integers(0, config.n_days, size=n), -rng.integers(1, 1500, size=n)
    )
    persona = rng.choice(len(PERSONA_SHARES), size=n, p=PERSONA_SHARES)
    tz_hours = rng.choice(TIME_ZONES, size=n, p=TIME_ZONE_SHARES)
    signup_second = to_utc(local_times(rng, profile_of(persona)), tz_hours)
    delay = np.clip(10 * 3600 * np.exp(1.2 * rng.standard_normal(n)), 3600, 20 * DAY_SECONDS)
    first_purchase_day = np.where(
        in_window, signup_day + ((signup_second + delay) // DAY_SECONDS).astype(np.int64), -1
    )

    activity = 0.35 * np.exp(0.9 * rng.standard_normal(n))  # heavy tail: few very active users
    heavy = persona == HEAVY_BROWSER
    bulk = persona == BULK_BUYER

    has_second = rng.random(n) < SECOND_DEVICE_SHARE
    devices = np.full((n, 2), -1, dtype=np.int64)
    devices[:, 0] = strings.add(device_ids(rng, n))
    devices[has_second, 1] = strings.add(device_ids(rng, int(has_second.sum())))
    device_agents = np.where(devices >= 0, rng.choice(agent_codes, size=(n, 2)), -1)
    changes_phone = (rng.random(n) < PHONE_CHANGE_SHARE) & (config.n_days > 1)
    phone_change_day = np.where(
        changes_phone, rng.integers(1, max(config.n_days, 2), size=n), NEVER
    )

    n_networks = max(1, n // USERS_PER_NETWORK)
    prefixes = network_prefixes(rng, RESIDENTIAL_FIRST_OCTETS, n_networks)
    home_network = rng.integers(0, n_networks, size=n)
    home_ip = strings.add(hosts_in(rng, [prefixes[i] for i in home_network]))
    household = np.flatnonzero(rng.random(n) < HOUSEHOLD_SHARE)
    household = household[household > 0]
    home_network[household] = home_network[household - 1]
    home_ip[household] = home_ip[household - 1]
    carriers = network_prefixes(rng, CARRIER_FIRST_OCTETS, N_CARRIER_NETWORKS)
    roaming = strings.add(
        hosts_in(rng, [carriers[i] for i in rng.integers(0, N_CARRIER_NETWORKS, size=ROAMING_IPS)])
    )

    return Population(
        signup_day=signup_day.astype(np.int64),
        signup_second=signup_second,
        first_purchase_day=first_purchase_day.astype(np.int64),
        p_active=np.clip(1.0 - np.exp(-activity), 0.02, 0.95),
        session_rate=0.3 + 1.2 * activity,
        views_per_session=np.maximum(
            1.0, 5.0 * np.exp(0.5 * rng.standard_normal(n)) * np.where(heavy, 5.0, 1.0)
        ),
        dwell_scale=np.exp(0.3 * rng.standard_normal(n)) * np.where(heavy, 1.5, 1.0),
        cart_rate=np.where(bulk, 0.25, 0.03 * np.exp(0.4 * rng.standard_normal(n))),
        buy_rate=np.where(bulk, 0.75, 0.33),
        quantity_mean=np.where(bulk, 8.0, 1.15),
        persona=persona,
        tz_hours=tz_hours,
        preferred_categories=rng.integers(0, N_CATEGORIES, size=(n, PREFERRED_CATEGORIES)),
        channel=channel_codes[rng.choice(len(CHANNELS), size=n, p=CHANNEL_WEIGHTS)],
        devices=devices,
        device_agents=device_agents,
        phone_change_day=phone_change_day.astype(np.int64),
        new_phone=strings.add(device_ids(rng, n)),
        new_phone_agent=rng.choice(agent_codes, size=n),
        home_ip=home_ip,
        home_network=home_network,
        network_prefixes=tuple(prefixes),
        roaming_ips=roaming,
        channel_codes=channel_codes,
        browser_agents=agent_codes,
        strings=strings,
    )


def profile_of(persona: np.ndarray) -> np.ndarray:
    """Diurnal profile per user: night owls keep their own hours, everyone else the daytime one."""
    return np.where(persona == NIGHT_OWL_USER, NIGHT_OWL, DAYTIME)
