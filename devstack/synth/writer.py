"""`generate()`: a synthetic product export, product family by product family."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.synth.export_format import COL, EXPORT_COLUMNS, NCOLS, STOCK_DEFAULTS, format_row
from devstack.synth.vocabulary import (
    ATTRIBUTE_SETS,
    BULLETS,
    CATEGORY_COUNT,
    CLIMATES,
    COLLECTIONS,
    COLORS,
    COUNTRIES,
    DAYS,
    DE_BLURB,
    FR_BLURB,
    LEAVES,
    MATERIALS,
    NAME_SUFFIXES,
    NAME_WORDS,
    NOUNS,
    PATTERNS,
    ROOT,
    SENTENCES,
    SIZES,
    STYLES,
    export_datetime,
    image_path,
    price_str,
    url_slug,
)


@dataclass(frozen=True)
class SynthStats:
    products: int
    rows: int
    configurables: int
    children: int
    simples: int
    virtuals: int
    store_view_rows: int
    bytes: int
    categories: int


@dataclass
class _Family:
    """What a configurable's children inherit from it."""

    name: str
    noun: int
    attribute_set: str
    categories: str
    websites: str
    description: str
    price: float
    price_style: int
    attributes: str
    day: int


class Builder:
    def __init__(
        self,
        rng: random.Random,
        store_views: Sequence[str],
        websites: Sequence[str],
    ) -> None:
        if not websites:
            raise ValueError("websites: at least one website code is needed")
        self.rng = rng
        self.store_views = tuple(store_views)
        self.websites = tuple(websites)

    # -- shared pieces ------------------------------------------------------------------------
    def family(self) -> _Family:
        rng = self.rng
        noun = rng.randrange(len(NOUNS))
        name = (
            f"{rng.choice(NAME_WORDS)} {rng.choice(MATERIALS).replace('&trade;', '')} "
            f"{NOUNS[noun][0]}{rng.choice(NAME_SUFFIXES)}"
        )
        cats = [rng.choice(LEAVES)]
        if rng.random() < 0.35:
            cats.append(rng.choice(COLLECTIONS))
        if rng.random() < 0.3:
            cats.append(ROOT)
        websites = self.websites[0]
        if len(self.websites) > 1 and rng.random() < 0.2:
            websites = ",".join(self.websites)
        sentences = rng.sample(SENTENCES, 2)
        bullets = rng.sample(BULLETS, 3)
        description = (
            f"<p>{sentences[0]} {sentences[1]}</p>\n<p>"
            + "<br />".join(f"&bull; {b}" for b in bullets)
            + "</p>"
        )
        attrs = [
            "material=" + "|".join(sorted(rng.sample(MATERIALS, rng.randint(1, 3)))),
            "climate=" + "|".join(sorted(rng.sample(CLIMATES, rng.randint(1, 4)))),
            "pattern=" + rng.choice(PATTERNS),
            "eco_collection=" + ("Yes" if rng.random() < 0.25 else "No"),
            "performance_fabric=" + ("Yes" if rng.random() < 0.3 else "No"),
        ]
        if rng.random() < 0.6:
            attrs.append("style_general=" + rng.choice(STYLES))
        attrs.append("sale=" + ("Yes" if rng.random() < 0.1 else "No"))
        return _Family(
            name=name,
            noun=noun,
            attribute_set=rng.choice(ATTRIBUTE_SETS),
            categories=",".join(cats),
            websites=websites,
            description=description,
            price=rng.randrange(500, 25000) / 100 if rng.random() < 0.6 else rng.randrange(5, 250),
            price_style=0 if rng.random() < 0.5 else 1,
            attributes=",".join(attrs),
            day=rng.randrange(0, 700),
        )

    def _global_row(
        self,
        sku: str,
        product_type: str,
        fam: _Family,
        name: str,
        visibility: str,
        price: float,
        attributes: str,
        *,
        weight: str,
        qty: str,
        in_stock: str,
        images: bool = True,
        variations: str = "",
    ) -> list[str]:
        rng = self.rng
        row = [""] * NCOLS
        c = COL
        row[c["sku"]] = sku
        row[c["attribute_set_code"]] = fam.attribute_set
        row[c["product_type"]] = product_type
        row[c["categories"]] = fam.categories
        row[c["product_websites"]] = fam.websites
        row[c["name"]] = name
        row[c["description"]] = fam.description
        if rng.random() < 0.3:
            row[c["short_description"]] = f"<p>{name}: {rng.choice(BULLETS)}</p>"
        row[c["weight"]] = weight
        row[c["product_online"]] = "1" if rng.random() < 0.97 else "2"
        row[c["tax_class_name"]] = "Taxable Goods"
        row[c["visibility"]] = visibility
        if price:
            row[c["price"]] = price_str(price, fam.price_style)
            if rng.random() < 0.1:
                row[c["special_price"]] = price_str(round(price * 0.8, 2), fam.price_style)
                start = rng.randrange(0, 1000)
                row[c["special_price_from_date"]] = DAYS[start]
                if rng.random() < 0.7:
                    row[c["special_price_to_date"]] = DAYS[min(start + rng.randrange(7, 180), 1199)]
        row[c["url_key"]] = f"{url_slug(name)}-{sku.lower()}"
        row[c["meta_title"]] = name
        row[c["meta_keywords"]] = name
        row[c["meta_description"]] = f"{name}, {fam.attribute_set}"
        if images:
            main = image_path(sku, "main")
            for col in ("base_image", "small_image", "thumbnail_image"):
                row[c[col]] = main
            n_alt = rng.randrange(0, 4)
            if n_alt:
                alts = [image_path(sku, tag) for tag in ("alt1", "back", "side")[:n_alt]]
                row[c["additional_images"]] = ",".join(alts)
                row[c["additional_image_labels"]] = ",".join([""] * n_alt)
        created = fam.day + rng.randrange(0, 30)
        row[c["created_at"]] = export_datetime(created, rng.randrange(1440))
        row[c["updated_at"]] = export_datetime(
            min(created + rng.randrange(0, 400), 1199), rng.randrange(1440)
        )
        row[c["display_product_options_in"]] = "Block after Info Column"
        row[c["msrp_display_actual_price_type"]] = "Use config"
        row[c["gift_message_available"]] = "Use config"
        row[c["country_of_manufacture"]] = rng.choice(COUNTRIES)
        row[c["additional_attributes"]] = attributes
        row[c["qty"]] = qty
        row[c["is_in_stock"]] = in_stock
        for col, value in STOCK_DEFAULTS.items():
            row[c[col]] = value
        if variations:
            row[c["configurable_variations"]] = variations
            row[c["configurable_variation_labels"]] = "size=Size,color=Color"
        return row

    def _store_rows(self, sku: str, product_type: str, fam: _Family, name: str) -> list[list[str]]:
        """Sparse override rows: translated name, sometimes description, url_key."""
        rng = self.rng
        if not self.store_views or rng.random() >= 0.3:
            return []
        rows = []
        noun = NOUNS[fam.noun]
        with_description = rng.random() < 0.5
        for code in self.store_views:
            row = [""] * NCOLS
            row[COL["sku"]] = sku
            row[COL["store_view_code"]] = code
            row[COL["attribute_set_code"]] = fam.attribute_set
            row[COL["product_type"]] = product_type
            if code == "fr":
                local, slug, blurb = noun[1], noun[3], FR_BLURB
            elif code == "de":
                local, slug, blurb = noun[2], noun[4], DE_BLURB
            else:
                local, slug, blurb = f"{noun[0]} ({code})", f"{url_slug(noun[0])}-{code}", ""
            translated = name.replace(noun[0], local, 1)
            row[COL["name"]] = translated
            if with_description and blurb:
                row[COL["description"]] = blurb + "\n" + fam.description
            row[COL["url_key"]] = f"{slug}-{url_slug(name)}-{sku.lower()}"
            rows.append(row)
        return rows

    def _stock(self) -> tuple[str, str]:
        if self.rng.random() < 0.08:
            return "0", "0"
        return str(self.rng.randrange(1, 500)), "1"

    # -- products -----------------------------------------------------------------------------
    def configurable(self, number: int, n_children: int) -> list[tuple[str, list[list[str]]]]:
        """Children (each with its rows) then the parent; (product_type, rows) per product."""
        rng = self.rng
        fam = self.family()
        parent_sku = f"CF{number:07d}"
        n_sizes = rng.randint(1, min(6, n_children))
        n_colors = -(-n_children // n_sizes)
        while n_sizes * n_colors < n_children or n_colors > len(COLORS):
            n_sizes += 1
            n_colors = -(-n_children // n_sizes)
        start = rng.randrange(0, len(SIZES) - n_sizes + 1)
        sizes = SIZES[start : start + n_sizes]
        colors = sorted(rng.sample(COLORS, n_colors))
        combos = [(s, col) for s in sizes for col in colors][:n_children]
        products: list[tuple[str, list[list[str]]]] = []
        entries = []
        weight = str(rng.randint(1, 3))
        for size, color in combos:
            sku = f"{parent_sku}-{size}-{color}"
            qty, in_stock = self._stock()
            name = f"{fam.name}-{size}-{color}"
            attrs = f"has_options=0,required_options=0,{fam.attributes},size={size},color={color}"
            row = self._global_row(
                sku,
                "simple",
                fam,
                name,
                "Not Visible Individually",
                fam.price,
                attrs,
                weight=weight,
                qty=qty,
                in_stock=in_stock,
            )
            products.append(("simple", [row, *self._store_rows(sku, "simple", fam, name)]))
            entries.append(f"sku={sku},size={size},color={color}")
        attrs = f"has_options=1,required_options=1,{fam.attributes}"
        parent = self._global_row(
            parent_sku,
            "configurable",
            fam,
            fam.name,
            "Catalog, Search",
            fam.price,
            attrs,
            weight="",
            qty="0",
            in_stock="1",
            variations="|".join(entries),
        )
        parent_rows = [parent, *self._store_rows(parent_sku, "configurable", fam, fam.name)]
        products.append(("configurable", parent_rows))
        return products

    def standalone(self, sku: str, virtual: bool) -> list[list[str]]:
        fam = self.family()
        qty, in_stock = self._stock()
        product_type = "virtual" if virtual else "simple"
        attrs = f"has_options=0,required_options=0,{fam.attributes}"
        row = self._global_row(
            sku,
            product_type,
            fam,
            fam.name,
            "Catalog, Search",
            fam.price,
            attrs,
            weight="" if virtual else str(self.rng.randint(1, 12)),
            qty=qty,
            in_stock=in_stock,
        )
        return [row, *self._store_rows(sku, product_type, fam, fam.name)]


_CHILD_SHARE = 0.7


def generate(
    path: str | Path,
    products: int,
    *,
    seed: int = 0,
    store_views: Sequence[str] = ("fr", "de"),
    websites: Sequence[str] = ("base",),
) -> SynthStats:
    """Writes a product export CSV with exactly `products` SKUs to `path`.

    About 70% of the SKUs are children of configurables (3..12 variants, listed before their
    parent), the rest configurable parents, standalone simples and a few virtuals. A product
    is in the first website; when more are given, about 20% are in all of them.
    """
    if products < 0:
        raise ValueError(f"products: must be >= 0, got {products}")
    rng = random.Random(seed)
    builder = Builder(rng, store_views, websites)
    written = rows = configurables = children = simples = virtuals = store_rows = 0
    size = 0
    buffer: list[str] = [format_row(EXPORT_COLUMNS)]
    number = 0
    with open(path, "wb") as out:

        def flush() -> None:
            nonlocal size
            data = "".join(buffer).encode("utf-8")
            out.write(data)
            size += len(data)
            buffer.clear()

        while written < products:
            remaining = products - written
            number += 1
            if remaining >= 4 and children < _CHILD_SHARE * (written + 8):
                n_children = min(rng.randint(3, 12), remaining - 1)
                group = builder.configurable(number, n_children)
                for _product_type, product_rows in group:
                    for row in product_rows:
                        buffer.append(format_row(row))
                    rows += len(product_rows)
                    store_rows += len(product_rows) - 1
                configurables += 1
                children += n_children
                written += n_children + 1
            else:
                virtual = rng.random() < 0.05
                sku = f"{'VP' if virtual else 'SP'}{number:07d}"
                product_rows = builder.standalone(sku, virtual)
                for row in product_rows:
                    buffer.append(format_row(row))
                rows += len(product_rows)
                store_rows += len(product_rows) - 1
                if virtual:
                    virtuals += 1
                else:
                    simples += 1
                written += 1
            if len(buffer) >= 2000:
                flush()
        flush()
    return SynthStats(
        products=written,
        rows=rows,
        configurables=configurables,
        children=children,
        simples=simples,
        virtuals=virtuals,
        store_view_rows=store_rows,
        bytes=size,
        categories=CATEGORY_COUNT,
    )
