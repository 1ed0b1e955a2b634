"""A tiny feed for testing the generic machinery without the products builder."""

from __future__ import annotations

from dataclasses import dataclass

from catalog_sync.feeds.registry import register
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec


class ToyItem(FeedItem):
    sku: str
    store_view_code: str
    name: str
    price: float
    tags: list[str] = []


@dataclass
class ToyRecord:
    sku: str
    name: str
    price: float | str
    tags: tuple[str, ...] = ()


def build_toy(record: ToyRecord, ctx: BuildContext) -> list[ToyItem]:
    return [
        ToyItem(
            sku=record.sku,
            store_view_code=view,
            name=record.name,
            price=float(record.price),
            tags=sorted(record.tags),
            modified_at=ctx.now,
        )
        for view, _website in ctx.store_views
    ]


TOY = register(
    FeedSpec(
        name="toy",
        identity=("sku", "storeViewCode"),
        group_field="sku",
        model=ToyItem,
        build=build_toy,
    )
)
