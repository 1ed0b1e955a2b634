"""What synthetic products are made of: names, descriptions, attributes, the category tree,
dates and prices as exports show them."""

from __future__ import annotations

import re
from datetime import date, timedelta

# (English, French, German, url slug fr, url slug de)
NOUNS: tuple[tuple[str, str, str, str, str], ...] = (
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
NAME_WORDS = (
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
NAME_SUFFIXES = ("", "", "", " HeatTech&trade;", " LumaTech&trade;", " Pro", " Elite", " Lite")
SENTENCES = (
    "Ideal for cold-weather training or work outdoors, it promises superior warmth with every wear.",
    "Thick material blocks out the wind as ribbed cuffs and bottom band seal in body heat.",
    "A lightweight, breathable shell keeps you dry when the weather turns.",
    'Our "all-day" fit moves with you, from the studio to the street.',
    "Made from recycled fibres, it is as kind to the planet as it is to your skin.",
    "Flatlock seams reduce chafing, so you can focus on the next mile.",
)
BULLETS = (
    "Machine wash/dry.",
    "Drawstring-adjustable hood.",
    "Two-tone heather knit.",
    "Moisture-wicking, quick-dry fabric.",
    "Zippered hand pockets.",
    "Reflective trim for low light.",
    "Imported.",
)
FR_BLURB = "<p>Conçu pour l'entraînement par temps froid, il offre une chaleur supérieure.</p>"
DE_BLURB = "<p>Ideal für das Training bei kaltem Wetter: hält warm, Tag für Tag.</p>"
SIZES = ("XS", "S", "M", "L", "XL", "XXL", "28", "30", "32", "34", "36")
COLORS = ("Black", "Blue", "Gray", "Green", "Orange", "Purple", "Red", "White", "Yellow")
MATERIALS = (
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
CLIMATES = ("All-weather", "Cool", "Cold", "Indoor", "Mild", "Rainy", "Spring", "Warm", "Windy")
PATTERNS = ("Solid", "Color-Blocked", "Checked", "Striped", "Graphic Print", "Camouflage")
STYLES = ("Pullover", "Full Zip", "1/4 zip", "Crew", "Tank", "Lightweight", "Insulated")
COUNTRIES = ("", "", "", "US", "CN", "VN", "PT", "DE")
ATTRIBUTE_SETS = ("Top", "Bottom", "Gear", "Default")

ROOT = "Default Category"
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
            base = f"{ROOT}/{_esc(top)}/{_esc(sub)}"
            target = collections if top in ("Collections", "Promotions") else leaves
            if not subsubs:
                target.append(base)
            for leaf in subsubs:
                count += 1
                target.append(f"{base}/{_esc(leaf)}")
    return leaves, collections, count


LEAVES, COLLECTIONS, CATEGORY_COUNT = _category_paths()

# Dates: locale short format as 2.4 exports write them (`3/6/24, 8:59 PM`).
_EPOCH = date(2023, 1, 1)
DAYS = tuple(
    f"{d.month}/{d.day}/{d.year % 100:02d}"
    for d in (_EPOCH + timedelta(days=i) for i in range(1200))
)


def export_datetime(day: int, minute: int) -> str:
    return stamp(DAYS[day], minute)


def stamp(day: str, minute: int) -> str:
    hour, mins = divmod(minute, 60)
    suffix = "AM" if hour < 12 else "PM"
    return f"{day}, {(hour % 12) or 12}:{mins:02d} {suffix}"


def price_str(value: float, style: int) -> str:
    """Prices as exports show them: `52.0000` (style 0) or `52` / `52.5` (style 1)."""
    if style == 0:
        return f"{value:.4f}"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def url_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("&trade;", "")).strip("-")


def image_path(sku: str, tag: str) -> str:
    base = sku.lower()
    return f"/{base[0]}/{base[1]}/{base}_{tag}.jpg"
