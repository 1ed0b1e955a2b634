"""MagentoRestSource against the local Magento REST API server (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogProduct, Stock, StoreValues, Variant
from catalog_sync.errors import SourceError
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource, search_criteria
from devstack.magento_server import MagentoApiServer

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
TOKEN = "local-magento-token"
T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def server(clock: Clock) -> Iterator[MagentoApiServer]:
    with MagentoApiServer(SMALL, clock=clock) as srv:
        yield srv


def source(server: MagentoApiServer, **kw: object) -> MagentoRestSource:
    kw.setdefault("sleep", lambda _s: None)
    return MagentoRestSource(server.url, lambda: TOKEN, **kw)  # type: ignore[arg-type]


def products(src: MagentoRestSource, **kw: object) -> dict[str, CatalogProduct]:
    out: dict[str, CatalogProduct] = {}
    for entry in src.read(**kw):  # type: ignore[arg-type]
        assert isinstance(entry, CatalogProduct), entry
        assert entry.sku not in out, f"{entry.sku} yielded twice"
        out[entry.sku] = entry
    return out


@pytest.fixture(scope="module")
def from_csv() -> dict[str, CatalogProduct]:
    return {p.sku: p for p in MagentoCsvSource(str(SMALL)).read() if isinstance(p, CatalogProduct)}


def differences(a: CatalogProduct, b: CatalogProduct) -> list[str]:
    # `line` is where the product starts in a file: REST has no lines; `product_id`
    # is Magento's entity id: the export CSV has none.
    return [
        f"{a.sku}.{f.name}: {getattr(a, f.name)!r} != {getattr(b, f.name)!r}"
        for f in fields(CatalogProduct)
        if f.name not in ("line", "product_id") and getattr(a, f.name) != getattr(b, f.name)
    ]


@pytest.mark.parametrize(("page_size", "concurrency"), [(100, 1), (5, 4), (1, 3)])
def test_magento_rest_reads_same_products_as_csv_source(
    server: MagentoApiServer,
    from_csv: dict[str, CatalogProduct],
    page_size: int,
    concurrency: int,
) -> None:
    src = source(server, page_size=page_size, concurrency=concurrency)
    rest = products(src)
    assert sorted(rest) == sorted(from_csv)
    diffs = [d for sku in from_csv for d in differences(from_csv[sku], rest[sku])]
    assert diffs == []
    ids = {rec.sku: rec.id for rec in server.catalog.recs}
    assert {sku: p.product_id for sku, p in rest.items()} == ids
    report = src.report()
    assert report.complete is True
    assert (report.rows, report.records, report.issues) == (12, 12, [])
    assert report.store_views == ["default", "fr"]
    assert src.high_water_mark == T0


def test_magento_rest_reads_a_bundle_as_the_csv_source_does(tmp_path: Path) -> None:
    """Its options from `bundle_product_options`, its selections' bundle parents from
    the parents pass: the same records as the export CSV gives."""
    from tests.unit.aco_fixtures import write_bundle_catalog

    path = tmp_path / "catalog.csv"
    write_bundle_catalog(path)
    csv_records = {
        p.sku: p for p in MagentoCsvSource(str(path)).read() if isinstance(p, CatalogProduct)
    }
    with MagentoApiServer(path) as srv:
        rest = products(source(srv))
    assert len(csv_records["KIT-1"].bundle) == 2
    assert rest["24-MB04"].bundle_parents == ("KIT-1",)
    diffs = [d for sku in csv_records for d in differences(csv_records[sku], rest[sku])]
    assert diffs == []


def test_magento_rest_maps_option_ids_overrides_children_and_stock(
    server: MagentoApiServer,
) -> None:
    rest = products(source(server, page_size=3))
    bag = rest["24-MB01"]
    assert bag.values.attributes["activity"] == ("Gym", "Hiking", "Trail", "Urban")
    assert bag.values.tax_class == "Taxable Goods"
    fr = bag.overrides["fr"]
    assert fr.name == "Sac de sport Joust"
    assert fr.price == 36.0
    assert fr.cleared == frozenset({"short_description"})
    assert fr.attributes == {"activity": ("Gym", "Randonnée")}
    assert bag.values_for("fr").short_description is None
    assert "default" not in bag.overrides  # the default view differs in nothing
    assert bag.websites == ("base", "eu")
    assert bag.categories == (("Gear", "Bags"),)
    parent = rest["MH01"]
    assert parent.variants[0] == Variant("MH01-XS-Black", (("size", "XS"), ("color", "Black")))
    assert parent.variant_labels == {"size": "Size", "color": "Color"}
    assert rest["MH01-S-Gray"].parent_skus == ("MH01",)
    assert rest["MH01-S-Gray"].stock == Stock(qty=0.0, is_in_stock=True)
    assert rest["24-MB04"].stock == Stock(qty=0.0, is_in_stock=False, manage_stock=True)
    assert rest["24-WG085"].categories == (("Gear", "Bags/Luggage"), ("Gear", "Fitness Equipment"))


def test_magento_rest_reads_only_given_skus(server: MagentoApiServer) -> None:
    src = source(server)
    rest = products(src, skus=["mh01-xs-black", "24-MB01", "NOPE"])
    assert sorted(rest) == ["24-MB01", "MH01-XS-Black"]
    assert rest["MH01-XS-Black"].parent_skus == ("MH01",)  # the parent was not asked for
    assert src.report().complete is True


def test_magento_rest_incremental_read_returns_changed_products_and_is_never_complete(
    server: MagentoApiServer, clock: Clock
) -> None:
    src = source(server, since=T0 + timedelta(hours=1), overlap=timedelta(0))
    assert products(src) == {}
    assert src.report().complete is False
    server.touch("MH01-XS-Gray", T0 + timedelta(hours=2))
    server.touch("24-MB04", T0 + timedelta(hours=3))
    rest = products(src)
    assert list(rest) == ["MH01-XS-Gray", "24-MB04"]  # sorted by updated_at
    assert rest["MH01-XS-Gray"].parent_skus == ("MH01",)
    assert src.high_water_mark == T0 + timedelta(hours=3)
    report = src.report()
    assert report.complete is False
    assert "deletions" in str(report.issues[0])


def test_magento_rest_incremental_read_includes_given_skus_once(
    server: MagentoApiServer, clock: Clock
) -> None:
    """`include`: SKUs an incremental read reads whatever their updated_at (a price
    window that passed); one also updated is yielded once."""
    src = source(server, since=T0 + timedelta(hours=1), overlap=timedelta(0))
    server.touch("24-MB04", T0 + timedelta(hours=3))
    src.include(["24-MB01", "24-MB04"])
    assert list(products(src)) == ["24-MB04", "24-MB01"]
    assert src.high_water_mark == T0 + timedelta(hours=3)
    full = source(server)
    full.include(["24-MB01"])  # a full read reads everything anyway, each once
    assert len(products(full)) == 12


def test_magento_rest_incremental_overlap_reads_the_window_before_since(
    server: MagentoApiServer,
) -> None:
    server.touch("24-MB04", T0 + timedelta(minutes=58))
    late = source(server, since=T0 + timedelta(hours=1), overlap=timedelta(minutes=5))
    assert list(products(late)) == ["24-MB04"]


def test_magento_rest_incremental_sees_a_reloaded_catalog_change(
    server: MagentoApiServer, clock: Clock, tmp_path: Path
) -> None:
    changed = tmp_path / "changed.csv"
    text = SMALL.read_text(encoding="utf-8")
    assert text.count("Strive Shoulder Pack") == 1
    changed.write_text(text.replace("Strive Shoulder Pack", "Strive Shoulder Pack II"), "utf-8")
    clock.now = T0 + timedelta(days=1)
    server.load(changed)
    src = source(server, since=T0 + timedelta(hours=1), overlap=timedelta(0))
    rest = products(src)
    assert list(rest) == ["24-MB04"]
    assert rest["24-MB04"].values.name == "Strive Shoulder Pack II"
    assert src.high_water_mark == T0 + timedelta(days=1)


def test_magento_rest_retries_transient_errors_with_backoff(server: MagentoApiServer) -> None:
    sleeps: list[float] = []
    # full jitter with the random factor fixed at 1: the backoff doubles from its base
    src = source(server, sleep=sleeps.append, backoff_base=0.5, rng=lambda: 1.0)
    server.fail_next(503, times=2)
    server.fail_next(0, times=1)  # a dropped connection
    rest = products(src)
    assert len(rest) == 12
    assert src.report().complete is True
    assert sleeps == [0.5, 1.0, 2.0]


def test_magento_rest_honours_retry_after(server: MagentoApiServer) -> None:
    sleeps: list[float] = []
    src = source(server, sleep=sleeps.append)
    server.fail_next(429, times=1, retry_after=7)
    assert len(products(src)) == 12
    assert sleeps == [7.0]


def test_magento_rest_failed_page_makes_read_incomplete_and_yields_the_rest(
    server: MagentoApiServer,
) -> None:
    src = source(server, page_size=5, max_tries=3)
    server.fail_next(503, times=3, path_contains="searchCriteria%5BcurrentPage%5D=2")
    rest = products(src)
    assert len(rest) == 7  # pages 1 and 3 of 5, 5, 2
    report = src.report()
    assert report.complete is False
    assert len(report.issues) == 1
    assert "page 2" in str(report.issues[0])
    assert "503" in str(report.issues[0])


def test_magento_rest_metadata_failure_raises_source_error(server: MagentoApiServer) -> None:
    src = source(server, max_tries=2)
    server.fail_next(500, times=2, path_contains="/V1/categories")
    with pytest.raises(SourceError, match="categories"):
        list(src.read())


def test_magento_rest_stops_on_total_count_when_server_repeats_last_page(
    server: MagentoApiServer,
) -> None:
    server.repeat_last_page = True
    src = source(server, page_size=5, concurrency=2)
    rest = products(src)
    assert len(rest) == 12
    pages = [r for r in server.requests if "/rest/all/V1/products?" in r and "type_id" not in r]
    assert not any("currentPage%5D=4" in r for r in pages)


def test_magento_rest_catalog_change_during_read_marks_read_incomplete(
    server: MagentoApiServer, tmp_path: Path
) -> None:
    smaller = tmp_path / "smaller.csv"
    lines = SMALL.read_text(encoding="utf-8").split("\n")
    smaller.write_text("\n".join(ln for ln in lines if not ln.startswith("MS-OFF,")), "utf-8")
    src = source(server, page_size=4, concurrency=1)
    for seen, entry in enumerate(src.read(), 1):
        if seen == 1:
            server.load(smaller)  # a product is deleted while pages 2.. are still to come
        assert isinstance(entry, CatalogProduct)
    report = src.report()
    assert report.complete is False
    assert "total_count" in str(report.issues[0])


def test_magento_rest_bad_token_raises_source_error_without_the_token(
    server: MagentoApiServer,
) -> None:
    src = MagentoRestSource(server.url, lambda: "wrong-secret-token")
    with pytest.raises(SourceError) as err:
        list(src.read())
    assert "401" in str(err.value)
    assert "wrong-secret-token" not in str(err.value)


def test_magento_rest_unmappable_product_is_rejected_naming_sku_and_field(
    server: MagentoApiServer,
) -> None:
    server.corrupt("24-MB04", "price", "twelve")
    server.corrupt("MS-OFF", "visibility", 9)
    src = source(server)
    entries = list(src.read())
    rejected = {e.sku or "": e for e in entries if isinstance(e, Rejected)}
    assert sorted(rejected) == ["24-MB04", "MS-OFF"]
    issue = rejected["24-MB04"].issues[0]
    assert (issue.sku, issue.field) == ("24-MB04", "price")
    assert "twelve" in issue.message
    assert rejected["MS-OFF"].issues[0].field == "visibility"
    assert sum(isinstance(e, CatalogProduct) for e in entries) == 10
    assert src.report().complete is True  # a rejected product is kept, never deleted


def test_magento_rest_unknown_store_view_raises(server: MagentoApiServer) -> None:
    with pytest.raises(SourceError, match="no store view 'de'"):
        list(source(server, store_views=["de"]).read())


def test_magento_rest_store_views_can_be_limited(server: MagentoApiServer) -> None:
    src = source(server, store_views=["default"])
    rest = products(src)
    assert rest["24-MB01"].overrides == {}
    assert src.report().store_views == ["default"]
    assert isinstance(rest["24-MB01"].values, StoreValues)


def test_search_criteria_builds_magento_query_parameters() -> None:
    params = search_criteria(
        [[("sku", "in", "A,B"), ("sku", "eq", "C,D")]], [("entity_id", "ASC")], 10, 2
    )
    assert params == [
        ("searchCriteria[filter_groups][0][filters][0][field]", "sku"),
        ("searchCriteria[filter_groups][0][filters][0][value]", "A,B"),
        ("searchCriteria[filter_groups][0][filters][0][condition_type]", "in"),
        ("searchCriteria[filter_groups][0][filters][1][field]", "sku"),
        ("searchCriteria[filter_groups][0][filters][1][value]", "C,D"),
        ("searchCriteria[filter_groups][0][filters][1][condition_type]", "eq"),
        ("searchCriteria[sortOrders][0][field]", "entity_id"),
        ("searchCriteria[sortOrders][0][direction]", "ASC"),
        ("searchCriteria[pageSize]", "10"),
        ("searchCriteria[currentPage]", "2"),
    ]
    assert search_criteria([]) == [("searchCriteria", "")]
