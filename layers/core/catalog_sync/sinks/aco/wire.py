"""The wire format of Adobe Commerce Optimizer's Data Ingestion API, as the project uses it.

Our own models, written from the documented facts (docs/deploy.md, "Sending to Adobe
Commerce Optimizer"): the request items of every endpoint a sync uses, their delete
keys, the response bodies, and the entity table (paths, batch sizes).

Every model forbids fields it does not know: the emulator rejects a typo the way a
strict reading of the API would, and a mapping that sends something ACO ignores is
caught in tests. Strings are strict (a number is not a string: attribute values must be
sent as strings), numbers accept ints and floats but not booleans or strings.

A sync sends each item's JSON exactly as the feed built it. A deletion is an item whose
JSON is exactly the entity's delete keys (`{"sku", "source"}` for a product,
`{"priceBookId"}` for a price book, ...): `is_delete` tells one from an upsert by its
keys, so the sink posts it to the entity's `/delete` endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

SLUG_PATTERN = r"^[a-z0-9-]+(/[a-z0-9-]+)*$"
SLUG_RE = re.compile(SLUG_PATTERN)
PRICE_BOOK_ID_MAX = 64
PRODUCT_MAX_BYTES = 200_000  # "200 KB of data per product" (read as 1000-byte KB: the safe side)
MAX_DISCOUNTS = 10  # per price
REQUIRED_METADATA = ("sku", "name", "description", "shortDescription", "price")

NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Wire):
    locale: NonEmpty


# -- product attribute metadata ------------------------------------------------------------

MetadataVisibleIn = Literal[
    "PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS", "PRODUCT_COMPARE"
]


class ProductMetadata(_Wire):
    code: NonEmpty
    source: Source
    label: StrictStr
    dataType: Literal["TEXT", "DECIMAL", "INTEGER", "BOOLEAN"]
    visibleIn: list[MetadataVisibleIn] | None = None
    filterable: StrictBool | None = None
    sortable: StrictBool | None = None
    searchable: StrictBool | None = None
    searchWeight: StrictFloat | None = None
    searchTypes: list[Literal["AUTOCOMPLETE", "CONTAINS", "STARTS_WITH"]] | None = None


class ProductMetadataDelete(_Wire):
    code: NonEmpty
    source: Source


# -- categories ----------------------------------------------------------------------------

Slug = Annotated[StrictStr, Field(min_length=1, max_length=1024, pattern=SLUG_PATTERN)]


class MetaTags(_Wire):
    title: StrictStr | None = None
    keywords: list[StrictStr] | None = None
    description: StrictStr | None = None


class CategoryAttribute(_Wire):
    code: NonEmpty
    values: list[StrictStr]


class CategoryImage(_Wire):
    url: NonEmpty
    label: StrictStr | None = None
    roles: list[Literal["BASE", "THUMBNAIL"]] | None = None
    customRoles: list[StrictStr] | None = None


class Category(_Wire):
    slug: Slug
    source: Source
    name: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    description: StrictStr | None = None
    families: list[StrictStr] | None = None
    position: StrictInt | None = None
    metaTags: MetaTags | None = None
    attributes: list[CategoryAttribute] | None = None
    images: list[CategoryImage] | None = None


class CategoryDelete(_Wire):
    slug: Slug
    source: Source


# -- products ------------------------------------------------------------------------------


class ProductAttribute(_Wire):
    code: NonEmpty
    values: list[StrictStr]
    variantReferenceId: StrictStr | None = None


class ProductImage(_Wire):
    url: NonEmpty
    label: StrictStr | None = None
    roles: list[Literal["BASE", "SMALL", "THUMBNAIL", "SWATCH"]] | None = None
    customRoles: list[StrictStr] | None = None


class ProductLink(_Wire):
    type: NonEmpty  # VARIANT_OF, IN_BUNDLE, RELATED, CROSSSELL, UPSELL, or a custom type
    sku: NonEmpty


class ProductRoute(_Wire):
    path: NonEmpty
    position: StrictInt | None = None


class ProductOptionValue(_Wire):
    variantReferenceId: NonEmpty
    label: StrictStr | None = None
    colorHex: StrictStr | None = None
    imageUrl: StrictStr | None = None


class ProductConfiguration(_Wire):
    attributeCode: NonEmpty
    type: Literal["CONFIGURABLE", "SWATCH"]
    values: list[ProductOptionValue]
    label: StrictStr | None = None
    defaultVariantReferenceId: StrictStr | None = None


class ProductBundleItem(_Wire):
    sku: NonEmpty
    qty: StrictFloat | None = None
    userDefinedQty: StrictBool | None = None


class ProductBundle(_Wire):
    group: NonEmpty
    items: list[ProductBundleItem]
    required: StrictBool | None = None
    multiSelect: StrictBool | None = None
    defaultItemSkus: list[StrictStr] | None = None


class ProductExternalId(_Wire):
    id: NonEmpty
    origin: NonEmpty


class Product(_Wire):
    sku: NonEmpty
    source: Source
    name: NonEmpty
    slug: NonEmpty
    status: Literal["ENABLED", "DISABLED"]
    description: StrictStr | None = None
    shortDescription: StrictStr | None = None
    visibleIn: list[Literal["CATALOG", "SEARCH"]] | None = None  # empty: not visible alone
    metaTags: MetaTags | None = None
    attributes: list[ProductAttribute] | None = None
    images: list[ProductImage] | None = None
    links: list[ProductLink] | None = None
    routes: list[ProductRoute] | None = None
    configurations: list[ProductConfiguration] | None = None
    bundles: list[ProductBundle] | None = None
    externalIds: list[ProductExternalId] | None = None

    @field_validator("visibleIn")
    @classmethod
    def _no_repeats(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("visibleIn repeats a value")
        return v


class ProductDelete(_Wire):
    sku: NonEmpty
    source: Source


# -- price books ---------------------------------------------------------------------------

PriceBookId = Annotated[StrictStr, Field(min_length=1, max_length=PRICE_BOOK_ID_MAX)]


class PriceBook(_Wire):
    """A base book (`currency`) or a child (`parentId`, inheriting the parent's currency)."""

    priceBookId: PriceBookId
    name: NonEmpty
    currency: Annotated[StrictStr, Field(min_length=1, max_length=5)] | None = None
    parentId: PriceBookId | None = None

    @model_validator(mode="after")
    def _base_or_child(self) -> PriceBook:
        if (self.currency is None) == (self.parentId is None):
            raise ValueError("a price book has either a currency (base) or a parentId (child)")
        if self.parentId == self.priceBookId:
            raise ValueError("a price book cannot be its own parent")
        return self


class PriceBookDelete(_Wire):
    priceBookId: PriceBookId


# -- prices --------------------------------------------------------------------------------

Percentage = Annotated[StrictFloat, Field(ge=0.01, le=99.99)]
Amount = Annotated[StrictFloat, Field(ge=0)]


class _AmountOrPercentage(_Wire):
    price: Amount | None = None
    percentage: Percentage | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _AmountOrPercentage:
        if (self.price is None) == (self.percentage is None):
            raise ValueError("give either a price or a percentage")
        return self


class Discount(_AmountOrPercentage):
    """`{code, price}` (a fixed amount off) or `{code, percentage}` (0.01 to 99.99)."""

    code: NonEmpty


class TierPrice(_AmountOrPercentage):
    """`{qty, price}` (the price from qty up) or `{qty, percentage}`; qty > 1."""

    qty: Annotated[StrictFloat, Field(gt=1)]


class Price(_Wire):
    sku: NonEmpty
    priceBookId: PriceBookId
    regular: Amount
    discounts: Annotated[list[Discount], Field(max_length=MAX_DISCOUNTS)] | None = None
    tierPrices: list[TierPrice] | None = None

    @field_validator("discounts")
    @classmethod
    def _unique_codes(cls, v: list[Discount] | None) -> list[Discount] | None:
        if v is not None:
            codes = [d.code for d in v]
            if len(set(codes)) != len(codes):
                raise ValueError("discount codes must be unique within a price")
        return v


class PriceDelete(_Wire):
    sku: NonEmpty
    priceBookId: PriceBookId


# -- responses -----------------------------------------------------------------------------


class Accepted(BaseModel):
    """200: every item accepted (processed asynchronously)."""

    status: Literal["ACCEPTED"] = "ACCEPTED"
    acceptedCount: int


class ItemError(BaseModel):
    """One bad item of a rejected request: `code` names the field."""

    itemIndex: int
    code: str
    message: str
    value: str = ""


class Failed(BaseModel):
    """400: the whole request rejected; `errors` name the bad items."""

    status: Literal["FAILED"] = "FAILED"
    message: str
    errors: list[ItemError] = []


class AuthFailure(BaseModel):
    """401 / 403 (`status` is a string there)."""

    title: str
    status: str
    error_code: str
    message: str


UNAUTHORIZED = AuthFailure(
    title="ErrInvalidOauthToken",
    status="401",
    error_code="401013",
    message="Oauth token is not valid",
)
FORBIDDEN = AuthFailure(
    title="ErrMissingOauthToken",
    status="403",
    error_code="403010",
    message="Oauth token is missing",
)


# -- the entity table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    upsert_path: str
    delete_path: str
    batch_size: int  # Adobe's connector's default; settings can change it
    item_model: type[BaseModel]
    delete_model: type[BaseModel]

    @property
    def delete_keys(self) -> frozenset[str]:
        return frozenset(self.delete_model.model_fields)


METADATA = Entity(
    "metadata",
    "/v1/catalog/products/metadata",
    "/v1/catalog/products/metadata/delete",
    100,
    ProductMetadata,
    ProductMetadataDelete,
)
CATEGORIES = Entity(
    "categories",
    "/v1/catalog/categories",
    "/v1/catalog/categories/delete",
    100,
    Category,
    CategoryDelete,
)
PRODUCTS = Entity(
    "products", "/v1/catalog/products", "/v1/catalog/products/delete", 100, Product, ProductDelete
)
PRICE_BOOKS = Entity(
    "price-books",
    "/v1/catalog/price-books",
    "/v1/catalog/price-books/delete",
    500,
    PriceBook,
    PriceBookDelete,
)
PRICES = Entity(
    "prices",
    "/v1/catalog/products/prices",
    "/v1/catalog/products/prices/delete",
    500,
    Price,
    PriceDelete,
)

# In the order a sync sends them (metadata first, prices last).
ENTITIES: dict[str, Entity] = {
    e.name: e for e in (METADATA, CATEGORIES, PRODUCTS, PRICE_BOOKS, PRICES)
}
_BY_PATH: dict[str, tuple[Entity, bool]] = {
    **{e.upsert_path: (e, False) for e in ENTITIES.values()},
    **{e.delete_path: (e, True) for e in ENTITIES.values()},
}


# The ACO target's feeds (catalog_sync.feeds.aco) by the entity they send.
_FEED_ENTITIES = {
    "acoProductMetadata": "metadata",
    "acoCategories": "categories",
    "acoProducts": "products",
    "acoPriceBooks": "price-books",
    "acoPrices": "prices",
}


def entity(name: str) -> Entity:
    """The entity called `name` ("products", ...); a feed called `aco-products` or
    `aco_products` names the same entity."""
    name = _FEED_ENTITIES.get(name, name)
    for prefix in ("aco-", "aco_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.replace("_", "-")
    if name == "pricebooks":
        name = "price-books"
    try:
        return ENTITIES[name]
    except KeyError:
        raise KeyError(f"no ACO entity {name!r} (known: {', '.join(ENTITIES)})") from None


def by_path(path: str) -> tuple[Entity, bool] | None:
    """`(entity, is_delete)` of a request path after the tenant id, or None."""
    return _BY_PATH.get(path.rstrip("/"))


def is_delete(ent: Entity, item: Mapping[str, Any]) -> bool:
    """An item whose fields are exactly the entity's delete keys is a deletion."""
    return frozenset(item) == ent.delete_keys


def validate_items(ent: Entity, delete: bool, items: Sequence[Any]) -> list[ItemError]:
    """The errors ACO would report for a request body's items: one per bad field, each
    naming its item's index, the field (`code`, dotted with list indexes), a message and
    the value sent (as a string; empty when missing)."""
    model = ent.delete_model if delete else ent.item_model
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(
                ItemError(
                    itemIndex=index,
                    code="item",
                    message="an item must be a JSON object",
                    value=_text(item),
                )
            )
            continue
        try:
            model.model_validate(item)
        except ValidationError as exc:
            errors.extend(_item_errors(index, exc))
    return errors


def _item_errors(index: int, exc: ValidationError) -> list[ItemError]:
    out: list[ItemError] = []
    seen: set[str] = set()
    for e in exc.errors(include_url=False):
        code = ".".join(str(p) for p in e["loc"]) or "item"
        if code in seen:
            continue
        seen.add(code)
        if e["type"] == "missing":
            message, value = f"required property '{code}' not found", ""
        elif e["type"] == "extra_forbidden":
            message, value = f"{code}: unknown property", _text(e.get("input"))
        else:
            message, value = f"{code}: {e['msg']}", _text(e.get("input"))
        out.append(ItemError(itemIndex=index, code=code, message=message, value=value))
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:500]
    try:
        return orjson.dumps(value).decode()[:500]
    except TypeError:
        return repr(value)[:500]
