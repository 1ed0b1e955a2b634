"""`acoPriceBooks` (aggregate): a base price book per website, a child per customer group.

Identity `priceBookId`, grouped by `priceBookId`. As Adobe's connector: the base
book's id is the website code, with the website's currency (WEBSITE_CURRENCIES,
default USD); a customer group with prices of its own (tier prices) gets a child
`<websiteCode>::<sha1(group)>` of the website's book. The sources name customer
groups by code (the export CSV has no group ids), so the hash is of the code.
Tier prices for ALL GROUPS stay in the base book. Built from the products of each
website, so a website without products has no book.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from pydantic import Field

from catalog_sync.catalog import ALL_CUSTOMER_GROUPS, CatalogProduct
from catalog_sync.feeds.aco import PRICE_BOOKS
from catalog_sync.feeds.aco.common import Wire, options
from catalog_sync.feeds.spec import BuildContext, BuildError, FeedSpec
from catalog_sync.sync.canonical import canonical_bytes

MAX_ID = 64


class PriceBookItem(Wire):
    price_book_id: str = Field(min_length=1, max_length=MAX_ID)
    name: str = Field(min_length=1)
    currency: str | None = Field(default=None, min_length=1, max_length=5)
    parent_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)


@lru_cache(maxsize=4096)
def group_book_id(website: str, group: str) -> str:
    book = f"{website}::{hashlib.sha1(group.encode()).hexdigest()}"
    if len(book) > MAX_ID:
        raise BuildError(
            "product_websites",
            f"price book id {book!r} of website {website!r} is over {MAX_ID} characters",
        )
    return book


def websites_of(product: CatalogProduct, ctx: BuildContext) -> list[str]:
    seen: dict[str, None] = {}
    for _view, website in ctx.store_views:
        if product.in_website(website):
            seen.setdefault(website, None)
    return list(seen)


def groups_on(product: CatalogProduct, website: str) -> list[str]:
    """The customer groups with tier prices of their own on `website`."""
    return sorted(
        {
            t.customer_group
            for t in product.tier_prices
            if t.customer_group != ALL_CUSTOMER_GROUPS and t.website in (None, website)
        }
    )


def build_price_book_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    aco = options(ctx)
    items: list[dict[str, Any]] = []
    for website in websites_of(product, ctx):
        if len(website) > MAX_ID:
            raise BuildError("product_websites", f"website code {website!r} is over 64 chars")
        items.append({"priceBookId": website, "name": website, "currency": aco.currency(website)})
        for group in groups_on(product, website):
            items.append(
                {
                    "priceBookId": group_book_id(website, group),
                    "name": f"{website} {group}",
                    "parentId": website,
                }
            )
    return items


def merge_price_books(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return a if a == b else min(a, b, key=canonical_bytes)


ACO_PRICE_BOOKS = FeedSpec(
    name=PRICE_BOOKS,
    identity=("priceBookId",),
    group_field="priceBookId",
    model=PriceBookItem,
    build=build_price_book_items,
    merge=merge_price_books,
    keys_only_tombstone=True,
)
