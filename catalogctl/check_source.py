"""`catalogctl check-source URL`: probe every Magento REST endpoint the REST source
reads, and report in one message each permission the integration lacks.

Magento answers a missing ACL resource and a token it does not accept alike (HTTP
401, "The consumer isn't authorized to access %resources." naming the endpoint's
resource), so: some endpoints refused = those permissions are missing; every endpoint
refused = the token itself is refused (wrong or revoked, or an integration token on
2.4.4+ with the bearer setting off). Optional endpoints (customer groups, MSI) degrade
the read with a warning; the others stop it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog_sync.errors import SourceError
from catalog_sync.sources.magento_rest import MagentoRestSource
from catalog_sync.sources.magento_rest.client import BEARER_HINT, RefusedError, _FetchFailedError

LEGACY = "stock from the legacy stock item (on a multi-source shop: the default source only)"
PAGE_1 = [("searchCriteria[pageSize]", "1"), ("searchCriteria[currentPage]", "1")]


@dataclass(frozen=True)
class Probe:
    what: str
    path: str
    resource: str
    required: bool
    params: tuple[tuple[str, str], ...] = tuple(PAGE_1)
    degraded: str = ""  # what an optional endpoint's refusal costs


PROBES = (
    Probe("store views", "/rest/all/V1/store/storeViews", "Magento_Backend::store", True, ()),
    Probe("websites", "/rest/all/V1/store/websites", "Magento_Backend::store", True, ()),
    Probe("products", "/rest/all/V1/products", "Magento_Catalog::products", True),
    Probe(
        "attributes",
        "/rest/all/V1/products/attributes",
        "Magento_Catalog::attributes_attributes",
        True,
    ),
    Probe(
        "attribute sets",
        "/rest/all/V1/products/attribute-sets/sets/list",
        "Magento_Catalog::sets",
        True,
    ),
    Probe("categories", "/rest/all/V1/categories", "Magento_Catalog::categories", True, ()),
    Probe(
        "stock items",
        "/rest/all/V1/stockItems/lowStock",
        "Magento_CatalogInventory::cataloginventory",
        True,
        (("scopeId", "0"), ("qty", "0"), ("pageSize", "1"), ("currentPage", "1")),
    ),
    Probe(
        "customer groups",
        "/rest/all/V1/customerGroups/0",
        "Magento_Customer::group",
        False,
        (),
        "tier prices use the default group codes",
    ),
    Probe(
        "inventory sources",
        "/rest/all/V1/inventory/sources",
        "Magento_InventoryApi::source",
        False,
        degraded=LEGACY,
    ),
    Probe(
        "inventory source items",
        "/rest/all/V1/inventory/source-items",
        "Magento_InventoryApi::source",
        False,
        degraded=LEGACY,
    ),
    Probe(
        "inventory stocks",
        "/rest/all/V1/inventory/stocks",
        "Magento_InventoryApi::stock",
        False,
        degraded=LEGACY,
    ),
    Probe(
        "inventory stock-source links",
        "/rest/all/V1/inventory/stock-source-links",
        "Magento_InventoryApi::stock",
        False,
        degraded=LEGACY,
    ),
)


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    status: str  # "ok", "refused", "absent" (404: not installed), "error"
    detail: str = ""


def probe_all(source: MagentoRestSource) -> list[Outcome]:
    out = []
    for probe in PROBES:
        try:
            source._get(probe.path, probe.params)
        except RefusedError as exc:
            out.append(Outcome(probe, "refused", f"HTTP {exc.status}"))
        except _FetchFailedError as exc:
            out.append(Outcome(probe, "absent" if exc.status == 404 else "error", str(exc)))
        else:
            out.append(Outcome(probe, "ok"))
    return out


def report(base_url: str, outcomes: list[Outcome]) -> tuple[bool, str]:
    """(the REST source can read the shop, the one message saying why or why not)."""
    refused = [o for o in outcomes if o.status == "refused"]
    errors = [o for o in outcomes if o.status == "error"]
    if refused and len(refused) == len(outcomes):
        return False, (
            f"Magento at {base_url} refused the token on every endpoint: it is wrong or "
            f"revoked, or it is an integration token that Magento does not accept as a bearer "
            f"token ({BEARER_HINT})."
        )
    lines = []
    required = sorted({o.probe.resource for o in refused if o.probe.required})
    optional = sorted({o.probe.resource for o in refused if not o.probe.required} - set(required))
    if required:
        what = ", ".join(o.probe.what for o in refused if o.probe.resource in required)
        lines.append(f"missing permissions (the read stops): {', '.join(required)} ({what})")
    for resource in optional:
        hit = [o for o in refused if o.probe.resource == resource]
        lines.append(
            f"missing permission (the read goes on with a warning): {resource} "
            f"({', '.join(o.probe.what for o in hit)}: {hit[0].probe.degraded})"
        )
    for o in errors:
        lines.append(f"{o.probe.what}: {o.detail}")
    absent = [o.probe.what for o in outcomes if o.status == "absent"]
    if absent:
        lines.append(f"not installed (404; fine): {', '.join(absent)}")
    ok = not required and not errors
    head = f"Magento at {base_url}: " + (
        "the REST source can read this shop" if ok else "NOT READY"
    )
    if refused:
        lines.append(
            "grant the permissions in System > Extensions > Integrations > (the integration) > "
            "API > Resource Access, then reactivate the integration"
        )
    return ok, "\n".join([head, *(f"- {line}" for line in lines)])


def run_check(base_url: str, token: str, echo: Callable[[str], None]) -> int:
    """Probe, print the report; 0 when the REST source can read the shop."""
    if not token:
        raise SourceError("no Magento token: pass --token or set MAGENTO_TOKEN")
    source = MagentoRestSource(base_url, lambda: token, max_tries=2, concurrency=1)
    ok, message = report(source.base_url, probe_all(source))
    echo(message)
    return 0 if ok else 1
