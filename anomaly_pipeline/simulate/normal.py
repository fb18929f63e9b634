"""Normal shopping behaviour: sessions that follow the search/view → click → fav/cart →
purchase funnel, with log-normal dwell times, inactivity gaps between sessions and a diurnal
rhythm.

The reference values below are also what anomalies blend towards as their difficulty rises, so
they live here as named constants rather than inside the generator.
"""

from __future__ import annotations

import numpy as np

from anomaly_pipeline.simulate.catalogue import N_CATEGORIES
from anomaly_pipeline.simulate.context import DayContext
from anomaly_pipeline.simulate.events import (
    CART,
    CLICK,
    COUPON,
    FAV,
    LOGIN,
    PURCHASE,
    REFUND,
    REVIEW,
    SEARCH,
    SIGNUP,
    VIEW,
    EventBatch,
    commerce_columns,
)
from anomaly_pipeline.simulate.identity import CHANNEL_WEIGHTS
from anomaly_pipeline.simulate.population import PREFERRED_CATEGORIES, profile_of
from anomaly_pipeline.simulate.sequence import Part, compose
from anomaly_pipeline.simulate.timing import (
    SESSION_GAP_S,
    group_starts,
    local_times,
    lognormal,
    rank_in_group,
    timeline,
    to_utc,
)

# --- reference behaviour (anomalies blend towards these) -------------------------------------
#: Median seconds spent before each event type (time since the previous event of the session).
DWELL_MEDIAN_S = {
    SIGNUP: 45.0,
    LOGIN: 4.0,
    VIEW: 20.0,
    CLICK: 6.0,
    SEARCH: 8.0,
    FAV: 5.0,
    CART: 12.0,
    PURCHASE: 40.0,
    REVIEW: 60.0,
    REFUND: 30.0,
    COUPON: 8.0,
}
DWELL_SIGMA = 0.9
VIEW_DWELL_S = DWELL_MEDIAN_S[VIEW]
EVENTS_PER_ACTIVE_DAY = 20.0  # typical volume of an active user's day
VIEWS_PER_SESSION = 5.0
VIEWS_PER_PURCHASE = 75.0
CLICK_PER_VIEW = 0.35
REVIEW_AFTER_PURCHASE = 0.12
#: Ratings 1..5 of honest reviews: mostly 4-5.
RATING_SHARES = np.array([0.04, 0.04, 0.10, 0.30, 0.52])
FIRST_PURCHASE_DELAY_S = 10 * 3600.0
MEDIAN_EXTRA_GAP_S = 5400.0  # inactivity beyond the 30-minute session boundary

# --- per-session / per-view probabilities ----------------------------------------------------
MAX_EXTRA_SESSIONS = 11
MAX_VIEWS_PER_SESSION = 300
LOGIN_SHARE = 0.15  # sessions that start with an explicit login
SEARCH_FIRST_SHARE = 0.5
RESEARCH_SHARE = 0.08  # a new search before a view
FAV_PER_VIEW = 0.04
COUPON_BEFORE_PURCHASE = 0.10
LATE_REVIEW_PER_SESSION = 0.02  # review of a purchase made before today
REFUND_PER_SESSION = 0.004
PREFERRED_CATEGORY_SHARE = 0.8
SECOND_DEVICE_USE = 0.3
ROAMING_SHARE = 0.12  # sessions from a mobile-carrier address instead of home
PREFERRED_CHANNEL_SHARE = 0.7
DRIFT_CHANNEL_SHARE = 0.25  # sessions arriving through the new channel after drift

# The unit patterns of a session, in performance order.
_PRE = (SIGNUP, LOGIN, SEARCH)
_BLOCK = (SEARCH, VIEW, CLICK, FAV, CART, COUPON, PURCHASE, REVIEW)
_POST = (REVIEW, REFUND)


def ratings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Honest review ratings."""
    return rng.choice(np.arange(1, 6), size=n, p=RATING_SHARES)


def preferred_items(ctx: DayContext, users: np.ndarray) -> np.ndarray:
    """One item per entry of ``users`` (population numbers), mostly from their favourite
    categories, popularity-weighted."""
    rng = ctx.rng
    n = len(users)
    pick = rng.integers(0, PREFERRED_CATEGORIES, size=n)
    categories = np.where(
        rng.random(n) < PREFERRED_CATEGORY_SHARE,
        ctx.population.preferred_categories[users, pick],
        rng.integers(0, N_CATEGORIES, size=n),
    )
    return ctx.catalogue.popular_items(rng, categories)


def normal_day(ctx: DayContext, users: np.ndarray) -> EventBatch:
    """The day's events of the (active, non-abnormal) population users ``users``."""
    rng, pop, day = ctx.rng, ctx.population, ctx.day_index
    n_users = len(users)
    signs_up = pop.signup_day[users] == day
    first_buy = pop.first_purchase_day[users] == day
    may_buy = pop.first_purchase_day[users] <= day

    # Sessions: one or more per active user; a signup that buys the same day returns later.
    n_sessions = 1 + np.minimum(rng.poisson(pop.session_rate[users]), MAX_EXTRA_SESSIONS)
    n_sessions = np.where(signs_up & first_buy, np.maximum(n_sessions, 2), n_sessions)
    owner = np.repeat(np.arange(n_users), n_sessions)  # position in ``users``
    s_user = users[owner]
    s_rank = rank_in_group(n_sessions)
    n_s = len(owner)
    last_session = s_rank == n_sessions[owner] - 1

    # Views and the funnel inside each view block.
    n_views = np.minimum(rng.geometric(1.0 / pop.views_per_session[s_user]), MAX_VIEWS_PER_SESSION)
    v_session = np.repeat(np.arange(n_s), n_views)
    v_user = s_user[v_session]
    n_v = len(v_session)
    item = preferred_items(ctx, v_user)
    cart = rng.random(n_v) < pop.cart_rate[v_user]
    buy = cart & (rng.random(n_v) < pop.buy_rate[v_user]) & may_buy[owner[v_session]]
    last_view = rank_in_group(n_views) == n_views[v_session] - 1
    forced = last_view & (first_buy[owner] & last_session)[v_session]
    cart |= forced
    buy |= forced
    block = np.column_stack(
        [
            rng.random(n_v) < RESEARCH_SHARE,
            np.ones(n_v, dtype=bool),
            rng.random(n_v) < CLICK_PER_VIEW,
            rng.random(n_v) < FAV_PER_VIEW,
            cart,
            buy & (rng.random(n_v) < COUPON_BEFORE_PURCHASE),
            buy,
            buy & (rng.random(n_v) < REVIEW_AFTER_PURCHASE),
        ]
    )
    signup_session = signs_up[owner] & (s_rank == 0)
    pre = np.column_stack(
        [
            signup_session,
            ~signup_session & (rng.random(n_s) < LOGIN_SHARE),
            rng.random(n_s) < SEARCH_FIRST_SHARE,
        ]
    )
    post = np.column_stack(
        [rng.random(n_s) < LATE_REVIEW_PER_SESSION, rng.random(n_s) < REFUND_PER_SESSION]
    )
    events = compose(
        [
            Part(np.arange(n_s), _PRE, pre),
            Part(v_session, _BLOCK, block),
            Part(np.arange(n_s), _POST, post),
        ]
    )
    n_e = len(events.etype)
    session = events.owner

    # Items: the block's item; the opening search looks for the first view's category; late
    # reviews and refunds concern some earlier purchase; signups and logins concern no item.
    first_view_item = item[group_starts(n_views)]
    about = events.attribute([first_view_item, item, preferred_items(ctx, s_user)])
    about = np.where(np.isin(events.etype, (SIGNUP, LOGIN)), -1, about)
    quantity = events.attribute([None, rng.geometric(1.0 / pop.quantity_mean[v_user]), None])

    # Session context: device, network, user agent, channel.
    device, agent = pop.primary_device(day, s_user)
    second = (pop.devices[s_user, 1] >= 0) & (rng.random(n_s) < SECOND_DEVICE_USE)
    device = np.where(second, pop.devices[s_user, 1], device)
    agent = np.where(second, pop.device_agents[s_user, 1], agent)
    ip = np.where(
        rng.random(n_s) < ROAMING_SHARE, rng.choice(pop.roaming_ips, size=n_s), pop.home_ip[s_user]
    )
    channel = np.where(
        rng.random(n_s) < PREFERRED_CHANNEL_SHARE,
        pop.channel[s_user],
        rng.choice(pop.channel_codes, size=n_s, p=CHANNEL_WEIGHTS),
    )
    if ctx.drift_channel >= 0:
        channel = np.where(rng.random(n_s) < DRIFT_CHANNEL_SHARE, ctx.drift_channel, channel)

    # Timing: dwell before each event; the first event of a later session waits an inactivity
    # gap of more than 30 minutes; the day starts at a diurnal time (the signup time for signups).
    e_user = s_user[session]
    medians = np.array([DWELL_MEDIAN_S[code] for code in range(len(DWELL_MEDIAN_S))])
    gaps = lognormal(
        rng, medians[events.etype] * pop.dwell_scale[e_user] * ctx.dwell_factor, DWELL_SIGMA, n_e
    )
    session_first = np.concatenate(([True], session[1:] != session[:-1]))
    extra_gap = lognormal(rng, MEDIAN_EXTRA_GAP_S, 0.8, n_e) * ctx.dwell_factor
    gaps = np.where(session_first, SESSION_GAP_S + 1.0 + extra_gap, gaps)
    first_time = np.where(
        signs_up,
        pop.signup_second[users],
        to_utc(local_times(rng, profile_of(pop.persona[users])), pop.tz_hours[users]),
    )
    t = timeline(first_time, gaps, np.bincount(owner[session], minlength=n_users))

    return EventBatch.build(
        user=e_user,
        t=t,
        etype=events.etype,
        **commerce_columns(ctx.catalogue, events.etype, about, quantity),
        rating=np.where(events.etype == REVIEW, ratings(rng, n_e), -1),
        session=s_rank[session],
        device=device[session],
        ip=ip[session],
        agent=agent[session],
        channel=channel[session],
    )
