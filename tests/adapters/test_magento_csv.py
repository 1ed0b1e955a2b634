"""MagentoCsvSource on hand-made Magento export CSVs: local, spilled to partitions, S3."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from catalog_sync.catalog import CatalogProduct, GalleryImage, GroupedLink, Stock, Variant
from catalog_sync.errors import SourceError
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource, parse_date
from catalog_sync.sources.magento_csv.cells import _additional_attributes, _categories
from devstack.localaws import LocalAws

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"


def by_sku(source: MagentoCsvSource, **kw: object) -> dict[str, CatalogProduct]:
    out: dict[str, CatalogProduct] = {}
    for entry in source.read(**kw):  # type: ignore[arg-type]
        assert isinstance(entry, CatalogProduct), entry
        out[entry.sku] = entry
    return out


@pytest.fixture(scope="module")
def small() -> dict[str, CatalogProduct]:
    return by_sku(MagentoCsvSource(str(SMALL)))


def test_magento_csv_reads_every_product_of_small_catalog() -> None:
    source = MagentoCsvSource(str(SMALL))
    products = by_sku(source)
    assert len(products) == 12
    report = source.report()
    assert report.complete is True
    assert (report.rows, report.records) == (14, 12)
    assert report.store_views == ["fr"]
    assert report.issues == []


def test_magento_csv_children_listed_before_parent_get_parent_sku(
    small: dict[str, CatalogProduct],
) -> None:
    for child in ("MH01-XS-Black", "MH01-XS-Gray", "MH01-S-Black", "MH01-S-Gray"):
        assert small[child].parent_skus == ("MH01",)
    parent = small["MH01"]
    assert parent.product_type == "configurable"
    assert parent.variants[0] == Variant("MH01-XS-Black", (("size", "XS"), ("color", "Black")))
    assert len(parent.variants) == 4
    assert parent.variant_labels == {"color": "Color", "size": "Size"}


def test_magento_csv_store_view_overrides_overlay_global(small: dict[str, CatalogProduct]) -> None:
    bag = small["24-MB01"]  # its fr row is the last line of the file
    fr = bag.values_for("fr")
    assert fr.name == "Sac de sport Joust"
    assert fr.price == 36.0
    assert fr.short_description is None  # __EMPTY__VALUE__ clears it
    assert fr.image_labels["base"] == "Joust bleu"
    assert fr.attributes["activity"] == ("Gym", "Randonnée")
    assert fr.attributes["material"] == ("Nylon", "Polyester")  # inherited
    assert fr.meta_title == "Joust Duffle Bag"  # inherited
    default = bag.values_for("default")
    assert default.name == "Joust Duffle Bag&trade;"
    assert default.short_description == 'A duffle, with "quotes", commas, and more'
    assert small["MH01"].values_for("fr").name == "Sweat à capuche Chaz Kangourou"


def test_magento_csv_parses_values(small: dict[str, CatalogProduct]) -> None:
    bag = small["24-MB01"]
    assert bag.websites == ("base", "eu")
    assert bag.values.description is not None and "\n<ul>\n" in bag.values.description
    assert bag.values.special_price == 29.5
    assert bag.values.special_from == datetime(2024, 3, 1, tzinfo=UTC)
    assert bag.values.special_to == datetime(2024, 3, 31, tzinfo=UTC)
    assert bag.values.attributes["activity"] == ("Gym", "Hiking", "Trail", "Urban")
    assert bag.values.attributes["country_of_manufacture"] == ("Vietnam",)
    assert bag.values.images["swatch"] == "/m/b/mb01-swatch.jpg"
    assert bag.links.related == ("24-MB04", "24-WG080")
    assert bag.links.crosssell == ("24-WG085",)
    assert bag.stock == Stock(qty=100.0, is_in_stock=True, manage_stock=None)
    assert small["24-MB04"].stock == Stock(qty=0.0, is_in_stock=False, manage_stock=True)
    strap = small["24-WG085"]
    assert strap.values.name == "-Sale- Sprite Yoga Strap 6 foot"  # spreadsheet guard removed
    assert strap.categories == (("Gear", "Bags/Luggage"), ("Gear", "Fitness Equipment"))
    assert small["24-WG086"].values.price == 17.0
    assert small["24-WG080"].grouped == (GroupedLink("24-WG085", 1.0), GroupedLink("24-WG086", 2.0))
    assert small["240-LV04"].product_type == "virtual"
    assert small["240-LV04"].values.weight is None
    assert small["240-LV04"].values.special_from == datetime(2015, 3, 16, 17, 8, tzinfo=UTC)
    assert small["MS-OFF"].values.enabled is False
    assert small["MS-OFF"].websites == ("eu",)


def test_magento_csv_categories_drop_root_and_bare_root(small: dict[str, CatalogProduct]) -> None:
    assert small["MH01"].categories == (
        ("Men", "Tops", "Hoodies & Sweatshirts"),
        ("Collections", "Eco Friendly"),
    )


def test_magento_csv_gallery_keeps_labels_positions_hidden(
    small: dict[str, CatalogProduct],
) -> None:
    assert small["MH01"].gallery == (
        GalleryImage("/m/h/mh01-gray_main.jpg", "Front", 1, False),
        GalleryImage("/m/h/mh01-gray_alt1.jpg", "Side view", 2, False),
        GalleryImage("/m/h/mh01-gray_back.jpg", "Back", 3, True),
    )


def test_magento_csv_filters_by_skus_case_insensitively() -> None:
    source = MagentoCsvSource(str(SMALL))
    products = by_sku(source, skus=["mh01-xs-black", "24-mb01"])
    assert sorted(products) == ["24-MB01", "MH01-XS-Black"]
    assert products["MH01-XS-Black"].parent_skus == ("MH01",)
    assert products["24-MB01"].overrides["fr"].name == "Sac de sport Joust"


def test_magento_csv_spilled_partitions_give_same_products(tmp_path: Path) -> None:
    in_memory = by_sku(MagentoCsvSource(str(SMALL)))
    spilled = by_sku(MagentoCsvSource(str(SMALL), workdir=tmp_path, partition_bytes=1024))
    assert spilled == in_memory
    assert list(tmp_path.iterdir()) == []  # temp partitions removed


def test_magento_csv_rows_of_a_product_need_not_be_contiguous(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "store_view_code,sku,name,price\nfr,A,Nom A,\n,B,Name B,2\n,a,Name A,1\nde,A,,1.5\n",
        encoding="utf-8",
    )
    for partition_bytes in (1 << 20, 16):
        products = by_sku(
            MagentoCsvSource(str(path), workdir=tmp_path, partition_bytes=partition_bytes)
        )
        a = products["a"]
        assert a.line == 4
        assert a.values_for("fr").name == "Nom A"
        assert a.values_for("de").price == 1.5
        assert a.values_for("de").name == "Name A"
        assert a.websites is None  # no product_websites column: every website


def test_magento_csv_only_wanted_store_views(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("sku,store_view_code,name\nA,,Name\nA,fr,Nom\nA,de,\n", encoding="utf-8")
    source = MagentoCsvSource(str(path), store_views=["default", "de"])
    products = by_sku(source)
    assert set(products["A"].overrides) == {"de"}
    assert source.report().store_views == ["de", "fr"]


def test_magento_csv_missing_file_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        list(MagentoCsvSource(str(tmp_path / "nope.csv")).read())


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2015-10-23 00:35:03", datetime(2015, 10, 23, 0, 35, 3, tzinfo=UTC)),
        ("2015-10-23", datetime(2015, 10, 23, tzinfo=UTC)),
        ("3/6/24", datetime(2024, 3, 6, tzinfo=UTC)),
        ("3/6/24, 8:59 PM", datetime(2024, 3, 6, 20, 59, tzinfo=UTC)),
        ("3/6/24, 8:59\u202fPM", datetime(2024, 3, 6, 20, 59, tzinfo=UTC)),
        ("12/6/24, 12:05 AM", datetime(2024, 12, 6, 0, 5, tzinfo=UTC)),
        ("16.03.15, 17:08", datetime(2015, 3, 16, 17, 8, tzinfo=UTC)),
    ],
)
def test_magento_csv_parse_date_lenient(cell: str, expected: datetime) -> None:
    assert parse_date(cell) == expected


@pytest.mark.parametrize("cell", ["someday", "13/45/24", "2024-02-30"])
def test_magento_csv_parse_date_rejects_garbage(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_date(cell)


def test_magento_csv_additional_attributes_glue_and_quotes() -> None:
    assert _additional_attributes("color=Blue,size=XL") == [("color", "Blue"), ("size", "XL")]
    assert _additional_attributes("climate=All-Weather|Cool,fit=Slim, Tall,size=M") == [
        ("climate", "All-Weather|Cool"),
        ("fit", "Slim, Tall"),
        ("size", "M"),
    ]
    assert _additional_attributes('note="a, b=c",x="say ""hi"""') == [
        ("note", "a, b=c"),
        ("x", 'say "hi"'),
    ]
    assert _additional_attributes("formula=a=b") == [("formula", "a=b")]


def test_magento_csv_categories_with_commas_and_slashes() -> None:
    assert _categories("Default Category/Men/Tops, Tees,Default Category/Gear") == (
        ("Men", "Tops, Tees"),
        ("Gear",),
    )
    assert _categories("Root/A\\/B/C,Default Category") == (("A/B", "C"),)


# -- S3 ------------------------------------------------------------------------


@pytest.fixture
def s3(aws_clients: Callable[..., LocalAws]) -> Iterator[object]:
    """An S3 client of the moto server (over HTTP) with a bucket `catalogs`.

    (Not `mock_aws`: it would reset the moto state every stack in this process shares.)
    """
    client = aws_clients().s3
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="catalogs")
    yield client


def test_magento_csv_reads_from_s3(s3: object) -> None:
    s3.put_object(Bucket="catalogs", Key="export/small.csv", Body=SMALL.read_bytes())  # type: ignore[attr-defined]
    source = MagentoCsvSource("s3://catalogs/export/small.csv", s3_client=s3)
    assert by_sku(source) == by_sku(MagentoCsvSource(str(SMALL)))
    assert source.report().complete is True
    assert source.describe() == "magento-csv:s3://catalogs/export/small.csv"


def test_magento_csv_missing_s3_object_raises_source_error(s3: object) -> None:
    source = MagentoCsvSource("s3://catalogs/missing.csv", s3_client=s3)
    with pytest.raises(SourceError, match="NoSuchKey"):
        list(source.read())


class _CutShortS3(BaseHTTPRequestHandler):
    """Answers GetObject with a Content-Length it does not honour: the stream breaks."""

    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(self.body) + 5000))
        self.end_headers()
        self.wfile.write(self.body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_magento_csv_broken_s3_stream_marks_read_incomplete() -> None:
    _CutShortS3.body = SMALL.read_bytes()[:3000]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutShortS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.meta.config.retries = {"max_attempts": 1}
        source = MagentoCsvSource("s3://catalogs/small.csv", s3_client=client)
        entries = list(source.read())
    finally:
        server.shutdown()
        server.server_close()
    report = source.report()
    assert report.complete is False
    assert any("could not be read to its end" in i.message for i in report.issues)
    assert any(isinstance(e, CatalogProduct) for e in entries)
    assert all(isinstance(e, CatalogProduct | Rejected) for e in entries)
