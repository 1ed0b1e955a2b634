"""Check a real Magento export (the Luma sample catalog) end to end on the local
stack: `python -m bench.luma PATH/ConfigurableSampleData_products.csv`.

Full resync → every SKU arrives, configurables with their variants, prices and
stock as in the file; then 10 price changes, 5 removals, 3 additions → the sync
sends exactly those 18 items; a second sync sends nothing. Prints a JSON report.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from devstack import synth
from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames


def _variant_mismatches(rows: list[dict[str, str]], held: dict[tuple[str, str], dict]) -> list:
    """Configurables whose variants (or their children's parents) differ at the receiver."""
    bad = []
    for r in rows:
        if r["product_type"] != "configurable":
            continue
        want = {
            e.split(",")[0].removeprefix("sku=")
            for e in r["configurable_variations"].split("|")
            if e
        }
        got = {v["sku"] for v in held[(r["sku"], "default")]["variants"]}
        parents_ok = all(held[(c, "default")]["parentSkus"] == [r["sku"]] for c in want)
        if want != got or not parents_ok:
            bad.append(r["sku"])
    return bad


def main() -> None:
    src = Path(sys.argv[1])
    csv.field_size_limit(1 << 30)
    rows = list(csv.DictReader(src.open(newline="", encoding="utf-8")))
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(names=ResourceNames.unique(), source=str(Path(tmp) / "catalog.csv")) as stack,
    ):
        catalog = Path(tmp) / "catalog.csv"
        catalog.write_bytes(src.read_bytes())
        runner = LocalRunner(stack.env)
        assert stack.receiver is not None
        receiver = stack.receiver
        report: dict[str, object] = {"rows": len(rows)}

        t = time.perf_counter()
        result = runner.reindex({"action": "resync", "feed": "products"})
        runner.drain()
        report["full_resync_s"] = round(time.perf_counter() - t, 2)
        report["full_resync_counts"] = result["runs"][0]["counts"]
        report["issues"] = result["runs"][0]["issues"]
        held = {(i["sku"], i["storeViewCode"]): i for i in receiver.state("products", "local-env")}
        skus = {r["sku"] for r in rows}
        report["skus_in_file"] = len(skus)
        report["items_held"] = len(held)
        report["missing"] = sorted(skus - {s for s, _ in held})
        bad_price = [
            r["sku"] for r in rows
            if held.get((r["sku"], "default"), {}).get("price", {}).get("regular") != float(r["price"])
        ]  # fmt: skip
        bad_stock = [
            r["sku"] for r in rows
            if held.get((r["sku"], "default"), {}).get("availability", {}).get("qty") != float(r["qty"])
            or held[(r["sku"], "default")]["availability"]["inStock"] != (r["is_in_stock"] == "1")
        ]  # fmt: skip
        bad_variants = _variant_mismatches(rows, held)
        report.update(
            price_mismatches=bad_price, stock_mismatches=bad_stock, variant_mismatches=bad_variants
        )
        report["configurables"] = sum(r["product_type"] == "configurable" for r in rows)

        edited = Path(tmp) / "edited.csv"
        # Luma has no standalone simple products: every simple is a variant. Removing a
        # variant also changes its parent (its variant list), which is sent too.
        change = synth.edit(
            catalog, edited, change_prices=10, remove=5, add=3, seed=1, only_standalone=False
        )
        report["removed_parents"] = sorted(
            {p for s in change.removed for p in held[(s, "default")]["parentSkus"]}
        )
        edited.replace(catalog)
        before = receiver.stats()["items"]["accepted"]
        t = time.perf_counter()
        runner.reindex({"action": "sync"})
        runner.drain()
        report["incremental_s"] = round(time.perf_counter() - t, 2)
        report["incremental_items_sent"] = receiver.stats()["items"]["accepted"] - before
        now_held = {i["sku"]: i for i in receiver.state("products", "local-env")}
        report["removed_gone"] = all(s not in now_held for s in change.removed)
        report["added_present"] = all(s in now_held for s in change.added)
        report["changed_prices"] = {
            s: [held[(s, "default")]["price"]["regular"], now_held[s]["price"]["regular"]]
            for s in change.changed
        }
        before = receiver.stats()["items"]["accepted"]
        runner.reindex({"action": "sync"})
        runner.drain()
        report["second_sync_items_sent"] = receiver.stats()["items"]["accepted"] - before
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
