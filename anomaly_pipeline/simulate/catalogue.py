"""The product catalogue every simulated user browses: categories, items, shops and prices.

Items are numbered ``category * ITEMS_PER_CATEGORY + rank`` where a low rank means a popular item,
so popularity-weighted sampling is one power-law draw instead of a weighted choice over all items.
Prices are log-normal around a per-category level, which gives a few expensive categories
(electronics-like) that account takeovers go for and cheap ones that brushing rings buy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_CATEGORIES = 40
ITEMS_PER_CATEGORY = 500
N_ITEMS = N_CATEGORIES * ITEMS_PER_CATEGORY
N_SHOPS = 600
#: Exponent of the rank draw ``rank = n * u**k``: larger = traffic more concentrated on top items.
POPULARITY_EXPONENT = 3.0
#: Categories whose price level is among the highest this many are "high value".
N_HIGH_VALUE_CATEGORIES = 5


@dataclass(frozen=True)
class Catalogue:
    """Item attributes indexed by item number, plus an index of each shop's listing."""

    item_shop: np.ndarray  # int64, shop number per item
    item_price: np.ndarray  # float64, unit price per item
    high_value_categories: np.ndarray  # int64, the priciest categories
    by_shop: np.ndarray  # item numbers ordered by (shop, price)
    shop_start: np.ndarray  # first position of each shop in ``by_shop``
    shop_size: np.ndarray  # number of items each shop lists

    @staticmethod
    def build(rng: np.random.Generator) -> Catalogue:
        category_level = 30.0 * np.exp(0.9 * rng.standard_normal(N_CATEGORIES))
        price = np.repeat(category_level, ITEMS_PER_CATEGORY) * np.exp(
            0.5 * rng.standard_normal(N_ITEMS)
        )
        price = np.maximum(np.round(price, 2), 0.5)
        # Shop sizes are skewed: a few big shops list many items.
        shop_weights = 1.0 / np.arange(1, N_SHOPS + 1) ** 0.8
        shops = rng.choice(N_SHOPS, size=N_ITEMS, p=shop_weights / shop_weights.sum())
        shop_size = np.bincount(shops, minlength=N_SHOPS)
        return Catalogue(
            item_shop=shops.astype(np.int64),
            item_price=price,
            high_value_categories=np.argsort(category_level)[-N_HIGH_VALUE_CATEGORIES:].astype(
                np.int64
            ),
            by_shop=np.lexsort((price, shops)),
            shop_start=np.concatenate(([0], np.cumsum(shop_size)[:-1])),
            shop_size=shop_size,
        )

    def popular_items(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
        """One item per entry of ``categories``, popular items far more likely than the tail."""
        rank = ITEMS_PER_CATEGORY * rng.random(len(categories)) ** POPULARITY_EXPONENT
        return categories * ITEMS_PER_CATEGORY + rank.astype(np.int64)

    def shop_items(
        self, rng: np.random.Generator, shops: np.ndarray, cheapest: int | None = None
    ) -> np.ndarray:
        """One random item listed by each entry of ``shops`` (among its ``cheapest`` if given).

        Every shop passed must list at least one item (see ``shops_with_items``).
        """
        size = self.shop_size[shops]
        if cheapest is not None:
            size = np.minimum(size, cheapest)
        offset = (rng.random(len(shops)) * size).astype(np.int64)
        return self.by_shop[self.shop_start[shops] + offset]

    def shops_with_items(self, minimum: int) -> np.ndarray:
        """Shops that list at least ``minimum`` items."""
        return np.flatnonzero(self.shop_size >= minimum)


def category_of(items: np.ndarray) -> np.ndarray:
    """Category number of each item number."""
    return items // ITEMS_PER_CATEGORY
