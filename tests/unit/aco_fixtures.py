"""A small Luma-like catalog for the ACO feeds, as source records (our own data)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from catalog_sync.catalog import (
    BundleOption,
    BundleSelection,
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    TierPrice,
    Variant,
)
from catalog_sync.feeds.spec import AcoContext, BuildContext

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "eu"))
ACO = AcoContext(
    locales=(("default", "en-US"), ("fr", "fr-FR"), ("de", "de-DE")),
    currencies=(("base", "USD"), ("eu", "EUR")),
    media_base_url="https://shop.example.com/media/catalog/product",
)
CTX = BuildContext(now=NOW, store_views=VIEWS, aco=ACO)


def child(sku: str, size: str, color: str, price: float = 52.0) -> CatalogProduct:
    return CatalogProduct(
        sku=sku,
        websites=("base",),
        values=StoreValues(
            name=f"Chaz Hoodie-{size}-{color}",
            url_key=f"chaz-hoodie-{size}-{color}".lower(),
            enabled=True,
            visibility="Not Visible Individually",
            weight=1.0,
            price=price,
            attributes={"size": (size,), "color": (color,)},
            images={"base": f"/m/h/mh01-{color.lower()}.jpg"},
        ),
        categories=(("Men", "Tops", "Hoodies & Sweatshirts"),),
        stock=Stock(qty=100, is_in_stock=True),
        parent_skus=("MH01",),
    )


def hoodie() -> CatalogProduct:
    return CatalogProduct(
        sku="MH01",
        product_type="configurable",
        websites=("base",),
        values=StoreValues(
            name="Chaz Hoodie",
            description="<p>Warm.</p>",
            short_description="A hoodie",
            url_key="chaz-hoodie",
            enabled=True,
            visibility="Catalog, Search",
            meta_title="Chaz Hoodie",
            meta_keywords="hoodie\nwarm\n\n sweatshirt ",
            meta_description="The Chaz hoodie",
            images={"base": "/m/h/mh01-gray.jpg", "small": "/m/h/mh01-gray.jpg"},
            image_labels={"base": "Front"},
            attributes={"material": ("Wool", "Cotton"), "eco_collection": ("Yes",)},
        ),
        overrides={"fr": StoreValues(name="Sweat Chaz", url_key="sweat-chaz")},
        categories=(("Men", "Tops", "Hoodies & Sweatshirts"), ("Collections", "Eco Friendly")),
        stock=Stock(qty=0, is_in_stock=True),
        gallery=(
            GalleryImage("/m/h/mh01-gray.jpg", position=1),
            GalleryImage("/m/h/mh01-back.jpg", label="Back", position=2),
            GalleryImage("/m/h/mh01-hidden.jpg", position=3, hidden=True),
        ),
        variants=(
            Variant("MH01-XS-Black", (("size", "XS"), ("color", "Black"))),
            Variant("MH01-S-Gray", (("size", "S"), ("color", "Gray"))),
        ),
        variant_labels={"size": "Size", "color": "Color"},
        links=Links(related=("24-MB01",), crosssell=("24-WG085",), upsell=("MH02", "MH02")),
    )


def bag(**values: object) -> CatalogProduct:
    """A simple product in both websites, with a special price and tier prices."""
    base = StoreValues(
        name="Joust Duffle Bag",
        url_key="joust-duffle-bag",
        enabled=True,
        visibility="Catalog, Search",
        weight=2.5,
        price=34.0,
        special_price=30.0,
        special_from=datetime(2025, 5, 1, tzinfo=UTC),
        special_to=datetime(2025, 6, 30, tzinfo=UTC),
        attributes={"activity": ("Gym", "Travel"), "strap_count": ("2",)},
    )
    for k, v in values.items():
        setattr(base, k, v)
    return CatalogProduct(
        sku="24-MB01",
        websites=("base", "eu"),
        values=base,
        categories=(("Gear", "Bags"),),
        stock=Stock(qty=0.5, is_in_stock=True),
        tier_prices=(
            TierPrice("ALL GROUPS", 5, 31.0),
            TierPrice("Wholesale", 10, 25.0),
            TierPrice("Wholesale", 1, 33.0),
        ),
    )


def yoga_set() -> CatalogProduct:
    return CatalogProduct(
        sku="24-WG080",
        product_type="grouped",
        websites=("base",),
        values=StoreValues(name="Yoga Set", url_key="yoga-set", enabled=True),
        grouped=(GroupedLink("24-WG085", 1.0), GroupedLink("24-WG086", 2.0)),
    )


def companion_kit() -> CatalogProduct:
    """Luma's bundle: the Sprite Yoga Companion Kit (a ball, a strap, a brick)."""
    return CatalogProduct(
        sku="24-WG080-KIT",
        product_type="bundle",
        websites=("base",),
        values=StoreValues(name="Sprite Yoga Companion Kit", url_key="sprite-kit", enabled=True),
        bundle=(
            BundleOption(
                "Sprite Stasis Ball",
                required=True,
                selections=(
                    BundleSelection("24-WG081-blue", 1.0, default=True),
                    BundleSelection("24-WG082-pink", 1.0),
                ),
            ),
            BundleOption(
                "Sprite Yoga Strap",
                multi=True,
                selections=(
                    BundleSelection("24-WG085", 1.0, user_defined_qty=True, default=True),
                    BundleSelection("24-WG081-blue", 2.0),  # offered twice: kept once
                ),
            ),
        ),
        product_id=2046,
    )


def catalog() -> list[CatalogProduct]:
    return [
        hoodie(),
        child("MH01-XS-Black", "XS", "Black"),
        child("MH01-S-Gray", "S", "Gray"),
        bag(),
        yoga_set(),
    ]


SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
KIT_BUNDLE_VALUES = (
    "name=Bag,type=radio,required=1,sku=24-MB01,price=0.0000,default=1,"
    "default_qty=1.0000,price_type=fixed,can_change_qty=0|"
    "name=Bag,type=radio,required=1,sku=24-MB04,price=0.0000,default=0,"
    "default_qty=1.0000,price_type=fixed,can_change_qty=1|"
    "name=Extras,type=checkbox,required=0,sku=24-WG085,price=0.0000,default=0,"
    "default_qty=2.0000,price_type=fixed"
)


def bundle_values(skus: list[str]) -> str:
    """One required radio option offering these SKUs, the first the default."""
    return "|".join(
        f"name=Pick,type=radio,required=1,sku={sku},price=0.0000,default={int(n == 0)},"
        "default_qty=1.0000,price_type=fixed"
        for n, sku in enumerate(skus)
    )


def write_bundle_catalog(
    path: Path, bundle_values: str = KIT_BUNDLE_VALUES, base: Path = SMALL
) -> None:
    """An export CSV (the small fixture) plus a bundle `KIT-1` of its products."""
    with base.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    kit = {k: ("" if k.startswith("configurable_") else v) for k, v in rows[0].items()}
    kit.update(
        sku="KIT-1",
        store_view_code="",
        product_type="bundle",
        name="Kit",
        url_key="kit-1",
        bundle_values=bundle_values,
    )
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, kit])
