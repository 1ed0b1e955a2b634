"""Deterministic synthetic Magento catalogs (product export CSV) and edits of them.

`generate()` writes a file shaped like Magento's standard product export (System > Data
Transfer > Export, entity Products): the full export header in export order, one row per
product and store view, PHP `fputcsv` quoting, LF line ends, HTML descriptions with raw
newlines, `additional_attributes`, `configurable_variations` (children listed before their
parent, as in the Luma sample), sparse store-view override rows.

`edit()` / `edit_fraction()` stream an export to a new file, changing prices, removing
products and adding new simple products; every row they do not touch is copied byte for byte.

Same seed and size give a byte-identical file: one `random.Random(seed)`, no clock, no set
iteration. Both functions stream row by row, so memory stays flat for large catalogs.

CLI::

    python -m devstack.synth generate OUT --products N [--seed S]
    python -m devstack.synth edit SRC DST --change-prices 10 --remove 5 --add 3
    python -m devstack.synth edit-fraction SRC DST --fraction 0.01
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import click

from catalog_sync.errors import SourceError

# The full product export header, in export order (magento-formats.md, section A).
EXPORT_COLUMNS: tuple[str, ...] = (
    "sku",
    "store_view_code",
    "attribute_set_code",
    "product_type",
    "categories",
    "product_websites",
    "name",
    "description",
    "short_description",
    "weight",
    "product_online",
    "tax_class_name",
    "visibility",
    "price",
    "special_price",
    "special_price_from_date",
    "special_price_to_date",
    "url_key",
    "meta_title",
    "meta_keywords",
    "meta_description",
    "base_image",
    "base_image_label",
    "small_image",
    "small_image_label",
    "thumbnail_image",
    "thumbnail_image_label",
    "swatch_image",
    "swatch_image_label",
    "created_at",
    "updated_at",
    "new_from_date",
    "new_to_date",
    "display_product_options_in",
    "map_price",
    "msrp_price",
    "map_enabled",
    "gift_message_available",
    "custom_design",
    "custom_design_from",
    "custom_design_to",
    "custom_layout_update",
    "page_layout",
    "product_options_container",
    "msrp_display_actual_price_type",
    "country_of_manufacture",
    "additional_attributes",
    "qty",
    "out_of_stock_qty",
    "use_config_min_qty",
    "is_qty_decimal",
    "allow_backorders",
    "use_config_backorders",
    "min_cart_qty",
    "use_config_min_sale_qty",
    "max_cart_qty",
    "use_config_max_sale_qty",
    "is_in_stock",
    "notify_on_stock_below",
    "use_config_notify_stock_qty",
    "manage_stock",
    "use_config_manage_stock",
    "use_config_qty_increments",
    "qty_increments",
    "use_config_enable_qty_inc",
    "enable_qty_increments",
    "is_decimal_divided",
    "website_id",
    "related_skus",
    "related_position",
    "crosssell_skus",
    "crosssell_position",
    "upsell_skus",
    "upsell_position",
    "additional_images",
    "additional_image_labels",
    "hide_from_product_page",
    "custom_options",
    "bundle_price_type",
    "bundle_sku_type",
    "bundle_price_view",
    "bundle_weight_type",
    "bundle_values",
    "configurable_variations",
    "configurable_variation_labels",
    "associated_skus",
    "downloadable_links",
    "downloadable_samples",
)
_COL = {name: i for i, name in enumerate(EXPORT_COLUMNS)}
_NCOLS = len(EXPORT_COLUMNS)

# Legacy stock-item columns that carry the same defaults on every global row.
_STOCK_DEFAULTS = {
    "out_of_stock_qty": "0",
    "use_config_min_qty": "1",
    "is_qty_decimal": "0",
    "allow_backorders": "0",
    "use_config_backorders": "1",
    "min_cart_qty": "1",
    "use_config_min_sale_qty": "1",
    "max_cart_qty": "10000",
    "use_config_max_sale_qty": "1",
    "notify_on_stock_below": "1",
    "use_config_notify_stock_qty": "1",
    "manage_stock": "1",
    "use_config_manage_stock": "1",
    "use_config_qty_increments": "1",
    "qty_increments": "1",
    "use_config_enable_qty_inc": "1",
    "enable_qty_increments": "0",
    "is_decimal_divided": "0",
    "website_id": "0",
}

# PHP fputcsv encloses a field holding the delimiter, the enclosure, the escape char (\),
# a space, a tab, CR or LF; enclosures inside are doubled.
_NEEDS_QUOTES = re.compile(r'[,"\\ \t\r\n]')


def format_row(values: Sequence[str]) -> str:
    """One CSV record the way PHP `fputcsv` writes it, LF-terminated."""
    search = _NEEDS_QUOTES.search
    return (
        ",".join(['"' + v.replace('"', '""') + '"' if v and search(v) else v for v in values])
        + "\n"
    )


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

# (English, French, German, url slug fr, url slug de)
_NOUNS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Hoodie", "Sweat à capuche", "Kapuzenpullover", "sweat-a-capuche", "kapuzenpullover"),
    ("Jacket", "Veste", "Jacke", "veste", "jacke"),
    ("Tee", "T-shirt", "T-Shirt", "t-shirt", "t-shirt"),
    ("Tank", "Débardeur", "Tanktop", "debardeur", "tanktop"),
    ("Pant", "Pantalon", "Hose", "pantalon", "hose"),
    ("Short", "Short", "Kurze Hose", "short", "kurze-hose"),
    ("Bra", "Brassière", "Sport-BH", "brassiere", "sport-bh"),
    ("Bag", "Sac", "Tasche", "sac", "tasche"),
    ("Watch", "Montre", "Uhr", "montre", "uhr"),
    ("Mat", "Tapis", "Matte", "tapis", "matte"),
)
_NAME_WORDS = (
    "Chaz",
    "Aero",
    "Mars",
    "Orion",
    "Zeppelin",
    "Helios",
    "Atlas",
    "Nova",
    "Juno",
    "Kratos",
    "Ida",
    "Electra",
    "Gwyn",
    "Sahara",
    "Echo",
    "Tiberius",
)
_NAME_SUFFIXES = ("", "", "", " HeatTech&trade;", " LumaTech&trade;", " Pro", " Elite", " Lite")
_SENTENCES = (
    "Ideal for cold-weather training or work outdoors, it promises superior warmth with every wear.",
    "Thick material blocks out the wind as ribbed cuffs and bottom band seal in body heat.",
    "A lightweight, breathable shell keeps you dry when the weather turns.",
    'Our "all-day" fit moves with you, from the studio to the street.',
    "Made from recycled fibres, it is as kind to the planet as it is to your skin.",
    "Flatlock seams reduce chafing, so you can focus on the next mile.",
)
_BULLETS = (
    "Machine wash/dry.",
    "Drawstring-adjustable hood.",
    "Two-tone heather knit.",
    "Moisture-wicking, quick-dry fabric.",
    "Zippered hand pockets.",
    "Reflective trim for low light.",
    "Imported.",
)
_FR_BLURB = "<p>Conçu pour l'entraînement par temps froid, il offre une chaleur supérieure.</p>"
_DE_BLURB = "<p>Ideal für das Training bei kaltem Wetter: hält warm, Tag für Tag.</p>"
_SIZES = ("XS", "S", "M", "L", "XL", "XXL", "28", "30", "32", "34", "36")
_COLORS = ("Black", "Blue", "Gray", "Green", "Orange", "Purple", "Red", "White", "Yellow")
_MATERIALS = (
    "Cotton",
    "Wool",
    "Polyester",
    "Nylon",
    "Spandex",
    "Fleece",
    "Organic Cotton",
    "Hemp",
    "CoolTech&trade;",
)
_CLIMATES = ("All-weather", "Cool", "Cold", "Indoor", "Mild", "Rainy", "Spring", "Warm", "Windy")
_PATTERNS = ("Solid", "Color-Blocked", "Checked", "Striped", "Graphic Print", "Camouflage")
_STYLES = ("Pullover", "Full Zip", "1/4 zip", "Crew", "Tank", "Lightweight", "Insulated")
_COUNTRIES = ("", "", "", "US", "CN", "VN", "PT", "DE")
_ATTRIBUTE_SETS = ("Top", "Bottom", "Gear", "Default")

_ROOT = "Default Category"
# A 3-level tree under the root (root + 40 categories). "Shorts/Pants" has a slash in its
# name, exported as `Shorts\/Pants`.
_TREE: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    (
        "Men",
        (
            ("Tops", ("Jackets", "Hoodies & Sweatshirts", "Tees", "Tanks")),
            ("Bottoms", ("Pants", "Shorts/Pants")),
        ),
    ),
    (
        "Women",
        (
            ("Tops", ("Jackets", "Hoodies & Sweatshirts", "Tees", "Bras & Tanks")),
            ("Bottoms", ("Pants", "Shorts")),
        ),
    ),
    (
        "Gear",
        (
            ("Bags", ("Backpacks", "Duffels")),
            ("Fitness Equipment", ("Balls", "Straps")),
            ("Watches", ()),
        ),
    ),
    ("Kids", (("Tops", ("Tees", "Hoodies")), ("Bottoms", ("Leggings", "Shorts")))),
    (
        "Collections",
        (("Eco Friendly", ()), ("New Luma Yoga Collection", ()), ("Erin Recommends", ())),
    ),
    ("Promotions", (("Women Sale", ()), ("Men Sale", ()))),
)


def _esc(name: str) -> str:
    return name.replace("/", "\\/")


def _category_paths() -> tuple[list[str], list[str], int]:
    """Returns (leaf paths for products, collection paths, number of categories)."""
    leaves: list[str] = []
    collections: list[str] = []
    count = 0
    for top, subs in _TREE:
        count += 1
        for sub, subsubs in subs:
            count += 1
            base = f"{_ROOT}/{_esc(top)}/{_esc(sub)}"
            target = collections if top in ("Collections", "Promotions") else leaves
            if not subsubs:
                target.append(base)
            for leaf in subsubs:
                count += 1
                target.append(f"{base}/{_esc(leaf)}")
    return leaves, collections, count


_LEAVES, _COLLECTIONS, CATEGORY_COUNT = _category_paths()

# Dates: locale short format as 2.4 exports write them (`3/6/24, 8:59 PM`).
_EPOCH = date(2023, 1, 1)
_DAYS = tuple(
    f"{d.month}/{d.day}/{d.year % 100:02d}"
    for d in (_EPOCH + timedelta(days=i) for i in range(1200))
)


def _datetime(day: int, minute: int) -> str:
    return _stamp(_DAYS[day], minute)


def _stamp(day: str, minute: int) -> str:
    hour, mins = divmod(minute, 60)
    suffix = "AM" if hour < 12 else "PM"
    return f"{day}, {(hour % 12) or 12}:{mins:02d} {suffix}"


def _price_str(value: float, style: int) -> str:
    """Prices as exports show them: `52.0000` (style 0) or `52` / `52.5` (style 1)."""
    if style == 0:
        return f"{value:.4f}"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("&trade;", "")).strip("-")


def _image(sku: str, tag: str) -> str:
    base = sku.lower()
    return f"/{base[0]}/{base[1]}/{base}_{tag}.jpg"


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


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


class _Builder:
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
        noun = rng.randrange(len(_NOUNS))
        name = (
            f"{rng.choice(_NAME_WORDS)} {rng.choice(_MATERIALS).replace('&trade;', '')} "
            f"{_NOUNS[noun][0]}{rng.choice(_NAME_SUFFIXES)}"
        )
        cats = [rng.choice(_LEAVES)]
        if rng.random() < 0.35:
            cats.append(rng.choice(_COLLECTIONS))
        if rng.random() < 0.3:
            cats.append(_ROOT)
        websites = self.websites[0]
        if len(self.websites) > 1 and rng.random() < 0.2:
            websites = ",".join(self.websites)
        sentences = rng.sample(_SENTENCES, 2)
        bullets = rng.sample(_BULLETS, 3)
        description = (
            f"<p>{sentences[0]} {sentences[1]}</p>\n<p>"
            + "<br />".join(f"&bull; {b}" for b in bullets)
            + "</p>"
        )
        attrs = [
            "material=" + "|".join(sorted(rng.sample(_MATERIALS, rng.randint(1, 3)))),
            "climate=" + "|".join(sorted(rng.sample(_CLIMATES, rng.randint(1, 4)))),
            "pattern=" + rng.choice(_PATTERNS),
            "eco_collection=" + ("Yes" if rng.random() < 0.25 else "No"),
            "performance_fabric=" + ("Yes" if rng.random() < 0.3 else "No"),
        ]
        if rng.random() < 0.6:
            attrs.append("style_general=" + rng.choice(_STYLES))
        attrs.append("sale=" + ("Yes" if rng.random() < 0.1 else "No"))
        return _Family(
            name=name,
            noun=noun,
            attribute_set=rng.choice(_ATTRIBUTE_SETS),
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
        row = [""] * _NCOLS
        c = _COL
        row[c["sku"]] = sku
        row[c["attribute_set_code"]] = fam.attribute_set
        row[c["product_type"]] = product_type
        row[c["categories"]] = fam.categories
        row[c["product_websites"]] = fam.websites
        row[c["name"]] = name
        row[c["description"]] = fam.description
        if rng.random() < 0.3:
            row[c["short_description"]] = f"<p>{name}: {rng.choice(_BULLETS)}</p>"
        row[c["weight"]] = weight
        row[c["product_online"]] = "1" if rng.random() < 0.97 else "2"
        row[c["tax_class_name"]] = "Taxable Goods"
        row[c["visibility"]] = visibility
        if price:
            row[c["price"]] = _price_str(price, fam.price_style)
            if rng.random() < 0.1:
                row[c["special_price"]] = _price_str(round(price * 0.8, 2), fam.price_style)
                start = rng.randrange(0, 1000)
                row[c["special_price_from_date"]] = _DAYS[start]
                if rng.random() < 0.7:
                    row[c["special_price_to_date"]] = _DAYS[
                        min(start + rng.randrange(7, 180), 1199)
                    ]
        row[c["url_key"]] = f"{_slug(name)}-{sku.lower()}"
        row[c["meta_title"]] = name
        row[c["meta_keywords"]] = name
        row[c["meta_description"]] = f"{name}, {fam.attribute_set}"
        if images:
            main = _image(sku, "main")
            for col in ("base_image", "small_image", "thumbnail_image"):
                row[c[col]] = main
            n_alt = rng.randrange(0, 4)
            if n_alt:
                alts = [_image(sku, tag) for tag in ("alt1", "back", "side")[:n_alt]]
                row[c["additional_images"]] = ",".join(alts)
                row[c["additional_image_labels"]] = ",".join([""] * n_alt)
        created = fam.day + rng.randrange(0, 30)
        row[c["created_at"]] = _datetime(created, rng.randrange(1440))
        row[c["updated_at"]] = _datetime(
            min(created + rng.randrange(0, 400), 1199), rng.randrange(1440)
        )
        row[c["display_product_options_in"]] = "Block after Info Column"
        row[c["msrp_display_actual_price_type"]] = "Use config"
        row[c["gift_message_available"]] = "Use config"
        row[c["country_of_manufacture"]] = rng.choice(_COUNTRIES)
        row[c["additional_attributes"]] = attributes
        row[c["qty"]] = qty
        row[c["is_in_stock"]] = in_stock
        for col, value in _STOCK_DEFAULTS.items():
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
        noun = _NOUNS[fam.noun]
        with_description = rng.random() < 0.5
        for code in self.store_views:
            row = [""] * _NCOLS
            row[_COL["sku"]] = sku
            row[_COL["store_view_code"]] = code
            row[_COL["attribute_set_code"]] = fam.attribute_set
            row[_COL["product_type"]] = product_type
            if code == "fr":
                local, slug, blurb = noun[1], noun[3], _FR_BLURB
            elif code == "de":
                local, slug, blurb = noun[2], noun[4], _DE_BLURB
            else:
                local, slug, blurb = f"{noun[0]} ({code})", f"{_slug(noun[0])}-{code}", ""
            translated = name.replace(noun[0], local, 1)
            row[_COL["name"]] = translated
            if with_description and blurb:
                row[_COL["description"]] = blurb + "\n" + fam.description
            row[_COL["url_key"]] = f"{slug}-{_slug(name)}-{sku.lower()}"
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
        while n_sizes * n_colors < n_children or n_colors > len(_COLORS):
            n_sizes += 1
            n_colors = -(-n_children // n_sizes)
        start = rng.randrange(0, len(_SIZES) - n_sizes + 1)
        sizes = _SIZES[start : start + n_sizes]
        colors = sorted(rng.sample(_COLORS, n_colors))
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
    builder = _Builder(rng, store_views, websites)
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


# --------------------------------------------------------------------------------------------
# Reading an export back, record by record, keeping the raw text
# --------------------------------------------------------------------------------------------


def iter_records(path: str | Path) -> Iterator[tuple[int, str, list[str]]]:
    """Yields (record number, raw text, fields); record 0 is the header.

    Quoted cells may hold newlines, so physical lines are joined until the quotes balance.
    """
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as src:
        pending: list[str] = []
        quotes = 0
        number = 0
        for line in src:
            pending.append(line)
            quotes += line.count('"')
            if quotes % 2:
                continue
            raw = "".join(pending)
            pending.clear()
            quotes = 0
            fields = next(csv.reader(io.StringIO(raw)), [])
            yield number, raw, fields
            number += 1
        if pending:
            raise SourceError(f"{path}: record {number}: unterminated quoted cell at end of file")


@dataclass(frozen=True)
class EditResult:
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    added: tuple[str, ...]
    products_before: int
    products_after: int


@dataclass
class _Scan:
    header: list[str]
    products: list[str]
    priced: list[str]
    standalone_candidates: list[str]
    children: set[str]


def _index(header: list[str], path: str | Path) -> dict[str, int]:
    index = {name: i for i, name in enumerate(header)}
    for needed in ("sku", "product_type", "price"):
        if needed not in index:
            raise SourceError(f"{path}: header has no {needed!r} column")
    return index


def _scan(path: str | Path) -> _Scan:
    header: list[str] = []
    idx: dict[str, int] = {}
    products: list[str] = []
    priced: list[str] = []
    simple_like: list[str] = []
    children: set[str] = set()
    seen: set[str] = set()
    for number, _raw, fields in iter_records(path):
        if number == 0:
            header = fields
            idx = _index(header, path)
            continue
        if len(fields) != len(header):
            raise SourceError(
                f"{path}: record {number}: {len(fields)} cells, header has {len(header)}"
            )
        sku = fields[idx["sku"]]
        if not sku:
            raise SourceError(f"{path}: record {number}: field 'sku' is empty")
        store_view = fields[idx["store_view_code"]] if "store_view_code" in idx else ""
        if store_view or sku in seen:
            continue
        seen.add(sku)
        products.append(sku)
        product_type = fields[idx["product_type"]]
        if fields[idx["price"]]:
            priced.append(sku)
        if product_type in ("simple", "virtual"):
            simple_like.append(sku)
        elif product_type == "configurable" and "configurable_variations" in idx:
            for entry in _variation_entries(fields[idx["configurable_variations"]]):
                children.add(_variation_sku(entry))
    if not header:
        raise SourceError(f"{path}: empty file, no header")
    standalone = [s for s in simple_like if s not in children]
    return _Scan(header, products, priced, standalone, children)


def _variation_entries(cell: str) -> list[str]:
    return [e for e in cell.split("|") if e]


def _variation_sku(entry: str) -> str:
    for pair in entry.split(","):
        key, _, value = pair.partition("=")
        if key == "sku":
            return value
    return ""


def _bump_price(old: str, rng: random.Random, sku: str, number: int) -> str:
    try:
        value = float(old)
    except ValueError:
        raise SourceError(
            f"record {number}: sku {sku!r}: field 'price' is not a number: {old!r}"
        ) from None
    new = round(max(value, 1.0) * rng.uniform(1.05, 1.35), 2)
    if "." in old:
        decimals = len(old.split(".", 1)[1])
        text = f"{new:.{max(decimals, 2)}f}" if decimals < 2 else f"{new:.{decimals}f}"
    else:
        text = _price_str(new, 1)
    return text if text != old else f"{value + 1:.4f}"


# Edits happen "later" than anything generate() writes (its dates stop in early 2026).
_EDIT_DAY = date(2026, 6, 1)


def edit(
    src: str | Path,
    dst: str | Path,
    *,
    change_prices: int = 0,
    remove: int = 0,
    add: int = 0,
    seed: int = 0,
    only_standalone: bool = True,
) -> EditResult:
    """Streams `src` to `dst`, changing the price of `change_prices` products, removing
    `remove` products (all their rows) and appending `add` new simple products.

    With `only_standalone` the changed and removed products are standalone simple/virtual
    products, so each edit touches exactly one SKU's rows. Otherwise any product with a price
    can change and any product can go; a removed child is also dropped from its parent's
    `configurable_variations`. Changed rows get a new price and `updated_at`; every other row
    is copied byte for byte. Raises `SourceError` on a malformed file, `ValueError` when there
    are not enough products to pick from.
    """
    for label, count in (("change_prices", change_prices), ("remove", remove), ("add", add)):
        if count < 0:
            raise ValueError(f"{label}: must be >= 0, got {count}")
    scan = _scan(src)
    rng = random.Random(seed)
    if only_standalone:
        priced = set(scan.priced)
        remove_pool = scan.standalone_candidates
        price_pool = [s for s in remove_pool if s in priced]
    else:
        price_pool, remove_pool = scan.priced, scan.products
    if change_prices > len(price_pool):
        raise ValueError(
            f"change_prices: {change_prices} requested, only {len(price_pool)} candidate products"
        )
    changed = rng.sample(price_pool, change_prices)
    changed_set = set(changed)
    remove_left = [s for s in remove_pool if s not in changed_set]
    if remove > len(remove_left):
        raise ValueError(f"remove: {remove} requested, only {len(remove_left)} candidate products")
    removed = rng.sample(remove_left, remove)
    removed_set = set(removed)
    existing = set(scan.products)
    added: list[str] = []
    serial = 0
    while len(added) < add:
        serial += 1
        sku = f"NP{seed:04d}{serial:07d}"
        if sku not in existing:
            added.append(sku)

    header = scan.header
    idx = _index(header, src)
    i_sku, i_price = idx["sku"], idx["price"]
    i_updated = idx.get("updated_at")
    i_vars = idx.get("configurable_variations")
    edit_time = _stamp(
        f"{_EDIT_DAY.month}/{_EDIT_DAY.day}/{_EDIT_DAY.year % 100:02d}", 540 + seed % 480
    )
    price_rng = random.Random(f"{seed}-prices")
    new_prices: dict[str, str] = {}
    with open(dst, "w", encoding="utf-8", newline="") as out:
        for number, raw, fields in iter_records(src):
            if number == 0:
                out.write(raw)
                continue
            sku = fields[i_sku]
            if sku in removed_set:
                continue
            if sku in changed_set and fields[i_price]:
                if sku not in new_prices:
                    new_prices[sku] = _bump_price(fields[i_price], price_rng, sku, number)
                fields[i_price] = new_prices[sku]
                if i_updated is not None and fields[i_updated]:
                    fields[i_updated] = edit_time
                out.write(format_row(fields))
                continue
            if i_vars is not None and fields[i_vars] and not only_standalone and removed_set:
                entries = _variation_entries(fields[i_vars])
                kept = [e for e in entries if _variation_sku(e) not in removed_set]
                if len(kept) != len(entries):
                    fields[i_vars] = "|".join(kept)
                    out.write(format_row(fields))
                    continue
            out.write(raw)
        if added:
            builder = _Builder(random.Random(f"{seed}-added"), (), ("base",))
            for sku in added:
                for row in builder.standalone(sku, virtual=False):
                    by_name = dict(zip(EXPORT_COLUMNS, row, strict=True))
                    out.write(format_row([by_name.get(col, "") for col in header]))
    return EditResult(
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(removed)),
        added=tuple(added),
        products_before=len(scan.products),
        products_after=len(scan.products) - len(removed) + len(added),
    )


def edit_fraction(
    src: str | Path,
    dst: str | Path,
    fraction: float,
    seed: int = 0,
    *,
    only_standalone: bool = True,
) -> EditResult:
    """Changes the price of `fraction` (0..1) of all products in `src` (rounded, at least
    one when fraction > 0); the picked products are standalone ones by default."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction: must be between 0 and 1, got {fraction}")
    total = len(_scan(src).products)
    count = round(total * fraction)
    if fraction > 0:
        count = max(count, 1)
    return edit(src, dst, change_prices=count, seed=seed, only_standalone=only_standalone)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _run(result: SynthStats | EditResult) -> None:
    click.echo(json.dumps(asdict(result), indent=2))


@click.group()
def cli() -> None:
    """Synthetic Magento product export CSVs."""


@cli.command("generate")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--products", type=click.IntRange(min=0), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--store-view", "store_views", multiple=True, default=("fr", "de"), show_default=True)
@click.option("--website", "websites", multiple=True, default=("base",), show_default=True)
def generate_command(
    out: str, products: int, seed: int, store_views: tuple[str, ...], websites: tuple[str, ...]
) -> None:
    """Write a synthetic export with exactly PRODUCTS SKUs to OUT."""
    _run(generate(out, products, seed=seed, store_views=store_views, websites=websites))


def _edit_cli(fn: Callable[..., EditResult], *args: object, **kwargs: object) -> None:
    try:
        result = fn(*args, **kwargs)
    except (SourceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    _run(result)


@cli.command("edit")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--change-prices", type=click.IntRange(min=0), default=0)
@click.option("--remove", type=click.IntRange(min=0), default=0)
@click.option("--add", type=click.IntRange(min=0), default=0)
@click.option("--seed", type=int, default=0)
@click.option("--any-product", is_flag=True, help="Pick among all products, not only standalone.")
def edit_command(
    src: str, dst: str, change_prices: int, remove: int, add: int, seed: int, any_product: bool
) -> None:
    """Copy SRC to DST changing prices, removing and adding products."""
    _edit_cli(
        edit,
        src,
        dst,
        change_prices=change_prices,
        remove=remove,
        add=add,
        seed=seed,
        only_standalone=not any_product,
    )


@cli.command("edit-fraction")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--fraction", type=click.FloatRange(0, 1), required=True)
@click.option("--seed", type=int, default=0)
def edit_fraction_command(src: str, dst: str, fraction: float, seed: int) -> None:
    """Copy SRC to DST changing the price of FRACTION of all products."""
    _edit_cli(edit_fraction, src, dst, fraction, seed)


if __name__ == "__main__":
    cli()
