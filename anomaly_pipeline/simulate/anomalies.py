"""Injected abnormal behaviour: one generator per anomaly type, each with its own signature.

Every generator takes the day context, the accounts that act abnormally today and a difficulty in
[0, 1]. Difficulty turns into a blend weight ``w = MAX_BLEND * difficulty``: continuous parameters
(volumes, intervals, shares) move from their blatant value towards the normal reference by ``w``
(geometrically for scales), and categorical tells (an automation user agent, a datacenter IP, a
shared ring device, a missing session cookie) appear with probability ``1 - w``. ``MAX_BLEND`` < 1
keeps a faint trace at difficulty 1, so "almost like normal users" is still not "identical".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from anomaly_pipeline.simulate.catalogue import N_CATEGORIES, N_ITEMS
from anomaly_pipeline.simulate.context import DayContext
from anomaly_pipeline.simulate.events import (
    CART,
    CLICK,
    COUPON,
    LOGIN,
    PURCHASE,
    REVIEW,
    SEARCH,
    SIGNUP,
    VIEW,
    EventBatch,
    commerce_columns,
)
from anomaly_pipeline.simulate.identity import (
    BOT_USER_AGENTS,
    CHANNELS,
    DATACENTER_FIRST_OCTETS,
    RESIDENTIAL_FIRST_OCTETS,
    SCRAPER_USER_AGENTS,
    device_ids,
    hosts_in,
    network_prefixes,
)
from anomaly_pipeline.simulate.normal import (
    CLICK_PER_VIEW,
    DWELL_MEDIAN_S,
    DWELL_SIGMA,
    EVENTS_PER_ACTIVE_DAY,
    FIRST_PURCHASE_DELAY_S,
    RATING_SHARES,
    REVIEW_AFTER_PURCHASE,
    VIEW_DWELL_S,
    VIEWS_PER_PURCHASE,
    VIEWS_PER_SESSION,
    preferred_items,
    ratings,
)
from anomaly_pipeline.simulate.sequence import Part, compose
from anomaly_pipeline.simulate.timing import (
    DAYTIME,
    HOUR,
    SESSION_GAP_S,
    SMALL_HOURS,
    blend,
    blend_scale,
    group_starts,
    grouped_cumsum,
    local_times,
    lognormal,
    rank_in_group,
    timeline,
    to_utc,
)

MAX_BLEND = 0.9
#: Fraud targets shops that list at least this many items; "cheap" = among its cheapest few.
MIN_SHOP_LISTING = 5
CHEAP_ITEMS = 5
#: Session numbers of an account-takeover attacker start here, apart from the victim's own.
ATTACKER_SESSION_BASE = 1000
#: A prime stride that walks the whole catalogue before repeating an item (N_ITEMS = 20000).
CRAWL_STRIDE = 7919
#: Time zone of the operators behind brushing rings and fresh fraud accounts (who have no
#: population profile of their own).
OPERATOR_TZ = 1.0
DIRECT, EMAIL, SOCIAL = (CHANNELS.index(name) for name in ("Direct", "Email", "Social"))

Injector = Callable[[DayContext, np.ndarray, float], EventBatch]


def click_bot(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """Scripted clicking: many view/click pairs at machine-regular intervals, never a purchase,
    in the small hours, from a datacenter with one automation user agent and no session cookie."""
    rng, pop, w = ctx.rng, ctx.population, MAX_BLEND * difficulty
    n = len(users)
    counts = _volume(rng, blend_scale(1500.0, EVENTS_PER_ACTIVE_DAY, w), n)
    owner, rank = np.repeat(np.arange(n), counts), rank_in_group(counts)
    total = len(owner)
    scripted = np.where(rank % 2 == 0, VIEW, CLICK)
    humanlike = np.where(rng.random(total) < CLICK_PER_VIEW, CLICK, VIEW)
    etype = np.where(rng.random(total) < w, humanlike, scripted)
    item = ctx.catalogue.popular_items(rng, rng.integers(0, N_CATEGORIES, size=total))
    source = np.arange(total)
    clicks_previous = (etype == CLICK) & (rank > 0)
    source[clicks_previous] -= 1  # a click is on the item just viewed
    item = item[source]

    automated = rng.random(n) < 1.0 - w
    start = to_utc(local_times(rng, np.where(automated, SMALL_HOURS, DAYTIME)), pop.tz_hours[users])
    gaps = lognormal(rng, blend_scale(2.0, VIEW_DWELL_S, w), blend(0.03, DWELL_SIGMA, w), total)
    t = timeline(start, gaps, counts)
    device, agent = pop.primary_device(ctx.day_index, users)
    bot_agents = ctx.strings.add(BOT_USER_AGENTS)
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=etype,
        **commerce_columns(ctx.catalogue, etype, item),
        session=_sessions(t, counts, keeps_cookie=rng.random(n) < w),
        device=np.where(automated, _new_devices(ctx, n), device)[owner],
        agent=np.where(automated, rng.choice(bot_agents, size=n), agent)[owner],
        ip=np.where(
            rng.random(n) < 1.0 - w, _new_ips(ctx, DATACENTER_FIRST_OCTETS, n), pop.home_ip[users]
        )[owner],
        channel=np.where(automated, pop.channel_codes[DIRECT], pop.channel[users])[owner],
    )


def scraping(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """Catalogue crawling: thousands of distinct item pages across all categories, very fast,
    no cart or purchase, from a datacenter with a crawler user agent and no device or cookie."""
    rng, pop, w = ctx.rng, ctx.population, MAX_BLEND * difficulty
    n = len(users)
    counts = _volume(rng, blend_scale(3000.0, EVENTS_PER_ACTIVE_DAY, w), n)
    owner, rank = np.repeat(np.arange(n), counts), rank_in_group(counts)
    total = len(owner)
    etype = np.where(rng.random(total) < 0.03, SEARCH, VIEW)
    walk = (rng.integers(0, N_ITEMS, size=n)[owner] + rank * CRAWL_STRIDE) % N_ITEMS
    item = np.where(rng.random(total) < 1.0 - w, walk, preferred_items(ctx, users[owner]))

    automated = rng.random(n) < 1.0 - w
    start = np.where(
        automated,
        rng.uniform(0.0, 24 * HOUR, size=n),
        to_utc(local_times(rng, np.full(n, DAYTIME)), pop.tz_hours[users]),
    )
    gaps = lognormal(rng, blend_scale(0.6, VIEW_DWELL_S, w), blend(0.35, DWELL_SIGMA, w), total)
    t = timeline(start, gaps, counts)
    device, agent = pop.primary_device(ctx.day_index, users)
    crawler_agents = ctx.strings.add(SCRAPER_USER_AGENTS)
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=etype,
        **commerce_columns(ctx.catalogue, etype, item),
        session=_sessions(t, counts, keeps_cookie=rng.random(n) < w),
        device=np.where(automated, -1, device)[owner],
        agent=np.where(automated, rng.choice(crawler_agents, size=n), agent)[owner],
        ip=np.where(
            rng.random(n) < 1.0 - w, _new_ips(ctx, DATACENTER_FIRST_OCTETS, n), pop.home_ip[users]
        )[owner],
        channel=np.where(automated, -1, pop.channel[users])[owner],
    )


def account_takeover(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """An attacker's session added to an established user's day: a login from a device the user
    never had and a network (/24) the user never used, then quick high-value purchases in
    categories the user does not shop in. The victim's own activity that day stays."""
    rng, pop, cat, w = ctx.rng, ctx.population, ctx.catalogue, MAX_BLEND * difficulty
    n = len(users)
    n_views = _volume(rng, blend_scale(1.0, VIEWS_PER_SESSION, w), n, minimum=0)
    n_buys = 1 + rng.poisson(blend(3.0, 0.1, w), size=n)
    events = compose(
        [
            Part.per_owner(np.ones(n, dtype=np.int64), (LOGIN,)),
            Part.per_owner(n_views, (VIEW,)),
            Part.per_owner(n_buys, (VIEW, CART, PURCHASE)),
        ]
    )
    unusual = rng.random(n) < 1.0 - w

    def items_for(owners: np.ndarray) -> np.ndarray:
        high_value = cat.popular_items(rng, rng.choice(cat.high_value_categories, size=len(owners)))
        return np.where(unusual[owners], high_value, preferred_items(ctx, users[owners]))

    view_owner = np.repeat(np.arange(n), n_views)
    buy_owner = np.repeat(np.arange(n), n_buys)
    item = events.attribute([None, items_for(view_owner), items_for(buy_owner)])
    quantity = events.attribute(
        [None, None, 1 + rng.poisson(blend(2.0, 0.15, w), size=len(buy_owner))]
    )
    counts = events.counts(n)
    gaps = lognormal(
        rng, blend_scale(3.0, VIEW_DWELL_S, w), blend(0.5, DWELL_SIGMA, w), len(events.etype)
    )
    start = to_utc(
        local_times(rng, np.where(rng.random(n) < 1.0 - w, SMALL_HOURS, DAYTIME)),
        pop.tz_hours[users],
    )
    t = timeline(start, gaps, counts)
    hosting = rng.random(n) < 1.0 - w
    ip = np.where(
        hosting,
        _new_ips(ctx, DATACENTER_FIRST_OCTETS, n, avoid=pop.home_network[users]),
        _new_ips(ctx, RESIDENTIAL_FIRST_OCTETS, n, avoid=pop.home_network[users]),
    )
    owner = events.owner
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=events.etype,
        **commerce_columns(cat, events.etype, item, quantity),
        session=ATTACKER_SESSION_BASE + _sessions(t, counts, keeps_cookie=np.ones(n, bool)),
        device=_new_devices(ctx, n)[owner],
        agent=rng.choice(pop.browser_agents, size=n)[owner],
        ip=ip[owner],
        channel=pop.channel_codes[DIRECT],
    )


def order_brushing(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """Rings of accounts sharing a few devices and one network buy cheap items of one shop with
    hardly a view per purchase, fast and together, and follow up with 5-star reviews."""
    rng, pop, cat, w = ctx.rng, ctx.population, ctx.catalogue, MAX_BLEND * difficulty
    n = len(users)
    ring, n_rings = _groups(rng, n, 3, 6)
    shop = rng.choice(cat.shops_with_items(MIN_SHOP_LISTING), size=n_rings)
    n_buys = 1 + rng.poisson(blend(2.5, 0.2, w), size=n)
    extra_views = rng.poisson(n_buys * (blend_scale(1.0, VIEWS_PER_PURCHASE, w) - 1.0))
    buy_owner = np.repeat(np.arange(n), n_buys)
    reviewed = rng.random(len(buy_owner)) < blend(0.9, REVIEW_AFTER_PURCHASE, w)
    present = np.column_stack([np.ones((len(buy_owner), 3), dtype=bool), reviewed])
    events = compose(
        [
            Part.per_owner(extra_views, (VIEW,)),
            Part(buy_owner, (VIEW, CART, PURCHASE, REVIEW), present),
        ]
    )

    def items_for(owners: np.ndarray) -> np.ndarray:
        ring_item = cat.shop_items(rng, shop[ring[owners]], cheapest=CHEAP_ITEMS)
        return np.where(
            rng.random(len(owners)) < 1.0 - w, ring_item, preferred_items(ctx, users[owners])
        )

    item = events.attribute([items_for(np.repeat(np.arange(n), extra_views)), items_for(buy_owner)])
    n_e = len(events.etype)
    five_star = rng.random(n_e) < blend(1.0, RATING_SHARES[4], w)
    rating = np.where(events.etype == REVIEW, np.where(five_star, 5, ratings(rng, n_e)), -1)

    counts = events.counts(n)
    ring_start = to_utc(local_times(rng, np.full(n_rings, DAYTIME)), OPERATOR_TZ)
    start = ring_start[ring] + rng.uniform(0.0, blend_scale(600.0, 6 * HOUR, w), size=n)
    gaps = lognormal(rng, blend_scale(4.0, VIEW_DWELL_S, w), blend(0.5, DWELL_SIGMA, w), n_e)
    t = timeline(start, gaps, counts)
    ring_devices = _new_devices(ctx, 2 * n_rings).reshape(n_rings, 2)
    ring_agents = rng.choice(pop.browser_agents, size=(n_rings, 2))
    ring_ips = _new_ips(ctx, RESIDENTIAL_FIRST_OCTETS, n_rings, hosts=2)
    pick = rng.integers(0, 2, size=n)
    shares = rng.random(n) < 1.0 - w
    device, agent = pop.primary_device(ctx.day_index, users)
    owner = events.owner
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=events.etype,
        **commerce_columns(cat, events.etype, item),
        rating=rating,
        session=_sessions(t, counts, keeps_cookie=np.ones(n, bool)),
        device=np.where(shares, ring_devices[ring, pick], device)[owner],
        agent=np.where(shares, ring_agents[ring, pick], agent)[owner],
        ip=np.where(rng.random(n) < 1.0 - w, ring_ips[ring, pick], pop.home_ip[users])[owner],
        channel=pop.channel[users][owner],
    )


def fake_review(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """A burst of reviews of one shop's items without buying them, with extreme ratings (a
    boosting campaign gives 5, a smear campaign 1), written quickly after little browsing."""
    rng, pop, cat, w = ctx.rng, ctx.population, ctx.catalogue, MAX_BLEND * difficulty
    n = len(users)
    target_shop = rng.choice(cat.shops_with_items(MIN_SHOP_LISTING), size=n)
    campaign_rating = np.where(rng.random(n) < 0.7, 5, 1)
    n_reviews = _volume(rng, blend_scale(8.0, 1.0, w), n)
    browse = rng.poisson(blend(0.5, VIEWS_PER_SESSION, w), size=n)
    review_owner = np.repeat(np.arange(n), n_reviews)
    looks_first = rng.random(len(review_owner)) < blend(0.2, 1.0, w)
    events = compose(
        [
            Part.per_owner(browse, (VIEW,)),
            Part(
                review_owner,
                (VIEW, REVIEW),
                np.column_stack([looks_first, np.ones(len(review_owner), bool)]),
            ),
        ]
    )
    reviewed = np.where(
        rng.random(len(review_owner)) < 1.0 - w,
        cat.shop_items(rng, target_shop[review_owner]),
        preferred_items(ctx, users[review_owner]),
    )
    item = events.attribute(
        [preferred_items(ctx, users[np.repeat(np.arange(n), browse)]), reviewed]
    )
    n_e = len(events.etype)
    on_campaign = rng.random(n_e) < 1.0 - w
    rating = np.where(
        events.etype == REVIEW,
        np.where(on_campaign, campaign_rating[events.owner], ratings(rng, n_e)),
        -1,
    )
    medians = np.where(
        events.etype == REVIEW, blend_scale(8.0, DWELL_MEDIAN_S[REVIEW], w), VIEW_DWELL_S
    )
    counts = events.counts(n)
    t = timeline(
        to_utc(local_times(rng, np.full(n, DAYTIME)), pop.tz_hours[users]),
        lognormal(rng, medians, DWELL_SIGMA, n_e),
        counts,
    )
    device, agent = pop.primary_device(ctx.day_index, users)
    owner = events.owner
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=events.etype,
        **commerce_columns(cat, events.etype, item),
        rating=rating,
        session=_sessions(t, counts, keeps_cookie=np.ones(n, bool)),
        device=device[owner],
        agent=agent[owner],
        ip=pop.home_ip[users][owner],
        channel=pop.channel[users][owner],
    )


def coupon_abuse(ctx: DayContext, users: np.ndarray, difficulty: float) -> EventBatch:
    """Fresh accounts created in a burst from shared devices and addresses claim sign-up coupons
    and place a small purchase seconds after signing up. ``users`` are new account numbers."""
    rng, pop, cat, w = ctx.rng, ctx.population, ctx.catalogue, MAX_BLEND * difficulty
    n = len(users)
    group, n_groups = _groups(rng, n, 3, 8)
    ones = np.ones(n, dtype=np.int64)
    n_coupons = 1 + rng.poisson(blend(2.0, 0.1, w), size=n)
    n_views = rng.poisson(blend(1.0, VIEWS_PER_SESSION, w), size=n)
    events = compose(
        [
            Part.per_owner(ones, (SIGNUP,)),
            Part.per_owner(n_coupons, (COUPON,)),
            Part.per_owner(n_views, (VIEW,)),
            Part.per_owner(ones, (VIEW, CART, PURCHASE)),
        ]
    )
    random_items = cat.popular_items(rng, rng.integers(0, N_CATEGORIES, size=int(n_views.sum())))
    cheap = cat.shop_items(
        rng, rng.choice(cat.shops_with_items(MIN_SHOP_LISTING), size=n), cheapest=CHEAP_ITEMS
    )
    bought = np.where(
        rng.random(n) < 1.0 - w,
        cheap,
        cat.popular_items(rng, rng.integers(0, N_CATEGORIES, size=n)),
    )
    item = events.attribute([None, None, random_items, bought])
    n_e = len(events.etype)

    counts = events.counts(n)
    gaps = lognormal(rng, blend_scale(4.0, VIEW_DWELL_S, w), blend(0.5, DWELL_SIGMA, w), n_e)
    purchase_unit_start = (events.part == 3) & (events.etype == VIEW)
    gaps = gaps + np.where(
        purchase_unit_start,
        lognormal(rng, blend_scale(5.0, FIRST_PURCHASE_DELAY_S, w), 0.5, n_e),
        0.0,
    )
    group_start = to_utc(local_times(rng, np.full(n_groups, DAYTIME)), OPERATOR_TZ)
    start = group_start[group] + rng.uniform(0.0, blend_scale(300.0, 4 * HOUR, w), size=n)
    t = timeline(start, gaps, counts)
    shares = rng.random(n) < 1.0 - w
    pick = rng.integers(0, 2, size=n)
    group_devices = _new_devices(ctx, 2 * n_groups).reshape(n_groups, 2)
    group_agents = rng.choice(pop.browser_agents, size=(n_groups, 2))
    group_ips = _new_ips(ctx, RESIDENTIAL_FIRST_OCTETS, n_groups, hosts=2)
    promo = pop.channel_codes[np.where(rng.random(n) < 0.5, EMAIL, SOCIAL)]
    owner = events.owner
    return EventBatch.build(
        user=users[owner],
        t=t,
        etype=events.etype,
        **commerce_columns(cat, events.etype, item),
        session=_sessions(t, counts, keeps_cookie=np.ones(n, bool)),
        device=np.where(shares, group_devices[group, pick], _new_devices(ctx, n))[owner],
        agent=np.where(shares, group_agents[group, pick], rng.choice(pop.browser_agents, size=n))[
            owner
        ],
        ip=np.where(shares, group_ips[group, pick], _new_ips(ctx, RESIDENTIAL_FIRST_OCTETS, n))[
            owner
        ],
        channel=np.where(rng.random(n) < 1.0 - w, promo, rng.choice(pop.channel_codes, size=n))[
            owner
        ],
    )


#: Generators by anomaly type; ``FRESH_ACCOUNT_TYPES`` act through accounts created that day,
#: ``ADDED_TYPES`` add to the victim's own day instead of replacing it.
INJECTORS: dict[str, Injector] = {
    "order_brushing": order_brushing,
    "account_takeover": account_takeover,
    "click_bot": click_bot,
    "scraping": scraping,
    "fake_review": fake_review,
    "coupon_abuse": coupon_abuse,
}
FRESH_ACCOUNT_TYPES = frozenset({"coupon_abuse"})
ADDED_TYPES = frozenset({"account_takeover"})


# --- helpers -----------------------------------------------------------------------------------
def _volume(rng: np.random.Generator, typical: float, n: int, minimum: int = 1) -> np.ndarray:
    """Per-actor event counts scattered log-normally around ``typical``."""
    return np.maximum(minimum, np.round(lognormal(rng, typical, 0.25, n))).astype(np.int64)


def _groups(
    rng: np.random.Generator, n: int, smallest: int, largest: int
) -> tuple[np.ndarray, int]:
    """Split ``n`` actors into consecutive groups of ``smallest``..``largest`` members."""
    sizes = rng.integers(smallest, largest + 1, size=max(1, n // smallest + 1))
    group = np.repeat(np.arange(len(sizes)), sizes)[:n]
    return group, int(group.max()) + 1 if n else 0


def _sessions(t: np.ndarray, counts: np.ndarray, keeps_cookie: np.ndarray) -> np.ndarray:
    """Session numbers per event (0, 1, ... split at 30-minute gaps), -1 for actors without a
    session cookie; ``t`` holds each actor's events consecutively and in time order."""
    new_session = np.concatenate(([0.0], (np.diff(t) > SESSION_GAP_S).astype(np.float64)))
    new_session[group_starts(counts)[counts > 0]] = 0.0
    number = grouped_cumsum(new_session, counts).astype(np.int64)
    return np.where(np.repeat(keeps_cookie, counts), number, -1)


def _new_devices(ctx: DayContext, n: int) -> np.ndarray:
    """Codes of ``n`` brand-new device ids."""
    return ctx.strings.add(device_ids(ctx.rng, n))


def _new_ips(
    ctx: DayContext,
    first_octets: np.ndarray,
    n: int,
    hosts: int = 1,
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """Codes of addresses in ``n`` fresh /24 networks (``hosts`` addresses each, shape (n, hosts)
    when hosts > 1); ``avoid`` gives per-network home-network indices that must not be reused."""
    prefixes = network_prefixes(ctx.rng, first_octets, n)
    if avoid is not None:
        homes = ctx.population.network_prefixes
        prefixes = [
            _other_network(p) if p == homes[h] else p for p, h in zip(prefixes, avoid, strict=True)
        ]
    codes = ctx.strings.add(hosts_in(ctx.rng, [p for p in prefixes for _ in range(hosts)]))
    return codes if hosts == 1 else codes.reshape(n, hosts)


def _other_network(prefix: str) -> str:
    """The neighbouring /24 of ``prefix`` (a deterministic way to step off a given network)."""
    a, b, c = prefix.split(".")
    return f"{a}.{b}.{(int(c) + 1) % 256}"
