"""Which catalog source a run may read: fixed at deploy time, narrowed by nobody.

An event may name a `source`, but only one that lies within the allow-list
(`CATALOG_SOURCE_ALLOW`, comma-separated; by default the folder of the configured
`CATALOG_SOURCE`). A REST source (a shop URL) is only ever the configured shop: the
Magento token goes to no other host. Anything else (another host, another bucket,
`file:`, a local path outside the allow-list, `/proc/...`) is refused before it is
opened, and the refusal names the value given, never anything read from it.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from catalog_sync.errors import ConfigError, RequestError

_WEB = ("https://", "http://")


def _origin(uri: str) -> tuple[str, str, int | None]:
    parts = urlsplit(uri)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _folder(uri: str) -> str:
    """The folder a source lies in: `s3://b/exports/x.csv` -> `s3://b/exports/`."""
    if uri.startswith("s3://"):
        return uri.rsplit("/", 1)[0] + "/" if uri.count("/") > 2 else uri
    return os.path.dirname(os.path.realpath(uri)) + os.sep


def _local_path(uri: str) -> str | None:
    """A local path's real location (symlinks and `..` resolved), or None if the
    value is not a plain path (it has a scheme, or is empty)."""
    if not uri or ":" in uri.split("/", 1)[0]:
        return None
    return os.path.realpath(uri)


def _within(candidate: str, entry: str) -> bool:
    if candidate == entry:
        return True
    folder = entry if entry.endswith(("/", os.sep)) else entry + "/"
    return candidate.startswith(folder)


def allowed_source(requested: str | None, configured: str | None, allow: str | None) -> str:
    """The source to read: `requested` (an event's) if the stack allows it, else the
    configured one. Raises `ConfigError` (a refusal) otherwise."""
    if not requested or requested == configured:
        if not configured:
            raise ConfigError("no catalog source: set CATALOG_SOURCE or pass a source")
        return configured
    shown = repr(requested[:200])
    if requested.startswith(_WEB) or (configured or "").startswith(_WEB):
        # The token belongs to the configured shop: no other URL, no path instead.
        same = (
            configured is not None
            and requested.startswith(_WEB)
            and _origin(requested) == _origin(configured)
            and urlsplit(requested).path.rstrip("/") == urlsplit(configured).path.rstrip("/")
        )
        if same and configured:
            return configured
        raise RequestError(
            f"source {shown} refused: this stack reads its catalog from the configured shop "
            "only (CATALOG_SOURCE); an event may narrow a run (feed, ids), not move it"
        )
    entries = [e.strip() for e in (allow or "").split(",") if e.strip()]
    if configured:
        entries.append(_folder(configured))
    if requested.startswith("s3://"):
        candidate: str | None = requested
        if "/" not in requested[5:] or requested.endswith("/"):
            candidate = None
    else:
        candidate = _local_path(requested)
        entries = [os.path.realpath(e) if _local_path(e) else e for e in entries]
    if candidate is not None and any(
        _within(candidate, e)
        for e in entries
        if e.startswith("s3://") == candidate.startswith("s3://")
    ):
        return requested if requested.startswith("s3://") else candidate
    raise RequestError(
        f"source {shown} refused: not within the sources this stack allows "
        f"({', '.join(entries) or 'none'}; CATALOG_SOURCE_ALLOW)"
    )
