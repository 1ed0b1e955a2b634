"""The export CSV's columns: what each known column becomes, and where it is in a file's header."""

from __future__ import annotations

import contextlib
import csv
import re
import struct
import sys

from catalog_sync.catalog import (
    VISIBILITIES,
)

EMPTY_VALUE = "__EMPTY__VALUE__"
# 8 MiB of CSV per partition: pass 2 holds one partition file in memory, and a file
# of N MiB gives N/8 partitions to share among the reindex workers evenly.
PARTITION_BYTES = 8 * 1024 * 1024
MAX_PARTITIONS = 512
# pass 1 of a file this large is read in byte ranges across the workers (ranges.py):
# below it, starting processes and the pre-scan cost more than they save
PARALLEL_BYTES = 64 * 1024 * 1024
UNKNOWN_SIZE_PARTITIONS = 64
MAX_WARNINGS = 1000
READ_BUFFER = 1 << 20

with contextlib.suppress(OverflowError):
    csv.field_size_limit(sys.maxsize)
if csv.field_size_limit() < 1 << 30:  # pragma: no cover - 32-bit platforms
    csv.field_size_limit(1 << 30)

# column -> (StoreValues field, kind)
_TEXT, _NUM, _ENABLED, _VISIBILITY, _DATE = range(5)
SCALAR_COLUMNS: dict[str, tuple[str, int]] = {
    "name": ("name", _TEXT),
    "description": ("description", _TEXT),
    "short_description": ("short_description", _TEXT),
    "url_key": ("url_key", _TEXT),
    "product_online": ("enabled", _ENABLED),
    "visibility": ("visibility", _VISIBILITY),
    "tax_class_name": ("tax_class", _TEXT),
    "weight": ("weight", _NUM),
    "price": ("price", _NUM),
    "special_price": ("special_price", _NUM),
    "special_price_from_date": ("special_from", _DATE),
    "special_price_to_date": ("special_to", _DATE),
    "meta_title": ("meta_title", _TEXT),
    "meta_keywords": ("meta_keywords", _TEXT),
    "meta_description": ("meta_description", _TEXT),
}
IMAGE_COLUMNS = {
    "base_image": "base",
    "small_image": "small",
    "thumbnail_image": "thumbnail",
    "swatch_image": "swatch",
}
# Main columns that are plain attributes, under their attribute codes.
ATTRIBUTE_COLUMNS = {
    "country_of_manufacture": "country_of_manufacture",
    "new_from_date": "news_from_date",
    "new_to_date": "news_to_date",
    "msrp_price": "msrp",
}
# Columns read elsewhere, or left out of the products feed on purpose (layout,
# timestamps, stock configuration, complex type-specific data).
HANDLED_COLUMNS = frozenset(
    {
        "sku",
        "store_view_code",
        "attribute_set_code",
        "product_type",
        "categories",
        "product_websites",
        "additional_attributes",
        "qty",
        "is_in_stock",
        "manage_stock",
        "use_config_manage_stock",
        "related_skus",
        "crosssell_skus",
        "upsell_skus",
        "additional_images",
        "additional_image_labels",
        "hide_from_product_page",
        "configurable_variations",
        "configurable_variation_labels",
        "associated_skus",
        *SCALAR_COLUMNS,
        *IMAGE_COLUMNS,
        *(f"{c}_label" for c in IMAGE_COLUMNS),
        *ATTRIBUTE_COLUMNS,
    }
)
IGNORED_COLUMNS = frozenset(
    {
        "created_at",
        "gift_message_available",
        "updated_at",
        "display_product_options_in",
        "map_price",
        "map_enabled",
        "custom_design",
        "custom_design_from",
        "custom_design_to",
        "custom_layout_update",
        "custom_layout",
        "page_layout",
        "product_options_container",
        "msrp_display_actual_price_type",
        "out_of_stock_qty",
        "use_config_min_qty",
        "is_qty_decimal",
        "allow_backorders",
        "use_config_backorders",
        "min_cart_qty",
        "use_config_min_sale_qty",
        "max_cart_qty",
        "use_config_max_sale_qty",
        "notify_on_stock_below",
        "use_config_notify_stock_qty",
        "use_config_qty_increments",
        "qty_increments",
        "use_config_enable_qty_inc",
        "enable_qty_increments",
        "is_decimal_divided",
        "website_id",
        "related_position",
        "crosssell_position",
        "upsell_position",
        "custom_options",
        "bundle_price_type",
        "bundle_sku_type",
        "bundle_price_view",
        "bundle_weight_type",
        "bundle_values",
        "bundle_shipment_type",
        "downloadable_links",
        "downloadable_samples",
        "configurable_variation_prices",
        "_store",
        "_attribute_set",
        "_type",
        "_product_websites",
    }
)
# Keys of a configurable_variations entry that are not option attributes.
VARIATION_EXTRA_KEYS = frozenset({"sku", "price", "display", "image", "weight", "qty", "name"})
_TRUE = frozenset({"1", "yes", "true", "y", "enabled"})
_FALSE = frozenset({"0", "no", "false", "n", "disabled"})
_VISIBILITY_LABELS = {v.lower(): v for v in VISIBILITIES} | {
    str(i): v for i, v in enumerate(VISIBILITIES, 1)
}
_VISIBILITY_CELLS = _VISIBILITY_LABELS | {v: v for v in VISIBILITIES}
_ATTR_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_FRAME = struct.Struct("<cIIH")  # kind, line, payload length, key length
_ROW, _LINK, _ISSUE, _BUNDLE_LINK = b"R", b"L", b"E", b"B"
_SOURCE = b"S"  # a row of the "Stock Sources" export file (stock_sources.py)
# A row's cells joined by NUL (UTF-8, surrogateescape): 4x cheaper to write than
# marshal and a quarter smaller. A row with a NUL in a cell is an `_ROW` (marshal).
_JOINED = b"J"
# Frames are marshalled in version 2: no interning flags or back-references, so the
# bytes (and the record fingerprints over them) are the same in every process, the
# serial pass 1 and a byte range's worker alike (version 4 marks a string that
# happens to be interned in this process).
MARSHAL_VERSION = 2


class _Columns:
    """Where each known column is in this file's header."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.index: dict[str, int] = {}
        for i, name in enumerate(header):
            self.index.setdefault(name, i)
        get = self.index.get
        self.scalars = [
            (i, fname, kind, col)
            for col, (fname, kind) in SCALAR_COLUMNS.items()
            if (i := get(col, -1)) >= 0
        ]
        self.images = [
            (i, get(f"{col}_label", -1), role, col)
            for col, role in IMAGE_COLUMNS.items()
            if (i := get(col, -1)) >= 0
        ]
        self.attributes = [
            (i, ATTRIBUTE_COLUMNS.get(name, name), name)
            for name, i in self.index.items()
            if name
            and name not in HANDLED_COLUMNS
            and name not in IGNORED_COLUMNS
            and (name in ATTRIBUTE_COLUMNS or not name.startswith("_"))
        ]
        self.attributes += [
            (i, code, col) for col, code in ATTRIBUTE_COLUMNS.items() if (i := get(col, -1)) >= 0
        ]
        self.sku = self.index["sku"]
        self.store_view = get("store_view_code", -1)
        self.product_type = get("product_type", -1)
        self.attribute_set = get("attribute_set_code", -1)
        self.websites = get("product_websites", -1)
        self.categories = get("categories", -1)
        self.additional_attributes = get("additional_attributes", -1)
        self.qty = get("qty", -1)
        self.is_in_stock = get("is_in_stock", -1)
        self.manage_stock = get("manage_stock", -1)
        self.use_config_manage_stock = get("use_config_manage_stock", -1)
        self.related = get("related_skus", -1)
        self.crosssell = get("crosssell_skus", -1)
        self.upsell = get("upsell_skus", -1)
        self.gallery = get("additional_images", -1)
        self.gallery_labels = get("additional_image_labels", -1)
        self.hidden = get("hide_from_product_page", -1)
        self.variations = get("configurable_variations", -1)
        self.variation_labels = get("configurable_variation_labels", -1)
        self.associated = get("associated_skus", -1)
        self.bundle_values = get("bundle_values", -1)
