"""The bytes a `MagentoCsvSource` reads, digested: the unchanged-source shortcut
(`sync.unchanged`) compares them with what the last complete run read.

The digest covers, in order: the source's mapping context (`RECORD_VERSION`, the
stock layout of INVENTORY_STOCKS, the store views it keeps), then each file it
reads (the catalog, the Stock Sources file if configured; a missing optional one as
absent), each with its length. The header and the stock codes are in the bytes.

An identity (local: device, inode, size, mtime and ctime in ns; S3: ETag, size,
LastModified, VersionId) is taken with the bytes and again later: equal identities
mean no write in between, provided the file was `settled` when hashed (its last
write at least `SETTLE_SECONDS` before, on the clock that stamps it: a write in the
same timestamp tick as an earlier one would not show; git's "racily clean" rule).
The ETag alone is never taken as the content: it is no MD5 of the bytes for
multipart or SSE-KMS objects, and the bytes cost one streamed GET.
"""

from __future__ import annotations

import os
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from catalog_sync.sources.magento_csv.partitions import RECORD_VERSION

if TYPE_CHECKING:
    from catalog_sync.ports import SourceContent
    from catalog_sync.sources.magento_csv.source import MagentoCsvSource

SETTLE_SECONDS = 2.0
CHUNK = 1 << 20
_ABSENT = "absent"


class _Unreadable(Exception):
    """A file that must be read cannot be: no digest (the read reports it)."""


def content(source: MagentoCsvSource) -> SourceContent | None:
    """Stream the source's files once into one digest, with their identities."""
    from catalog_sync.ports import SourceContent  # not at the top: see `source`

    h = xxhash.xxh3_128()
    context = (RECORD_VERSION, source.stocks, sorted(source.store_views or ()))
    h.update(f"magento-csv\x1e{context!r}".encode())
    identity: list[str] = []
    settled = True
    try:
        for uri, optional in _files(source):
            ident, ok = _digest_one(source, uri, optional, h)
            identity.append(ident)
            settled = settled and ok
    except _Unreadable:
        return None
    return SourceContent(h.hexdigest(), tuple(identity), settled)


def identity(source: MagentoCsvSource) -> tuple[str, ...] | None:
    """The files' identities now (None: one cannot be taken)."""
    try:
        return tuple(_identity_now(source, uri, optional) for uri, optional in _files(source))
    except _Unreadable:
        return None


def _files(source: MagentoCsvSource) -> list[tuple[str, bool]]:
    files = [(source.uri, False)]
    if source.stock_sources:
        files.append((source.stock_sources, source.stock_sources_optional))
    return files


def _digest_one(source: MagentoCsvSource, uri: str, optional: bool, h: Any) -> tuple[str, bool]:
    if uri.startswith("s3://"):
        return _digest_s3(source.s3_client, uri, optional, h)
    path = Path(uri.removeprefix("file://"))
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115
    except FileNotFoundError:
        if not optional:
            raise _Unreadable(uri) from None
        h.update(b"\x1d" + _ABSENT.encode())
        return f"{_ABSENT}:{path}", True
    except OSError as exc:
        raise _Unreadable(uri) from exc
    with f:
        before = os.fstat(f.fileno())
        n = 0
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    h.update(b"\x1d%d" % n)
    ident = _stat_identity(before)
    try:
        stable = n == before.st_size and _stat_identity(os.stat(path)) == ident
    except OSError:
        stable = False
    written = max(before.st_mtime_ns, before.st_ctime_ns)
    return ident, stable and time.time_ns() - written >= SETTLE_SECONDS * 1e9


def _stat_identity(st: os.stat_result) -> str:
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise _Unreadable(uri)
    return bucket, key


def _s3_identity(uri: str, resp: dict[str, Any]) -> str:
    modified = resp.get("LastModified")
    stamp = modified.isoformat() if modified is not None else ""
    return (
        f"s3:{uri}:{resp.get('ETag', '')}:{resp.get('ContentLength', '')}:{stamp}:"
        f"{resp.get('VersionId', '')}"
    )


def _digest_s3(client: Any, uri: str, optional: bool, h: Any) -> tuple[str, bool]:
    if client is None:
        raise _Unreadable(uri)
    bucket, key = _split_s3(uri)
    try:
        resp = client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore errors: the read says what went wrong
        if optional and _is_missing(exc):
            h.update(b"\x1d" + _ABSENT.encode())
            return f"{_ABSENT}:{uri}", True
        raise _Unreadable(uri) from exc
    body = resp["Body"]
    n = 0
    try:
        while chunk := body.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    except Exception as exc:  # a broken stream: no digest
        raise _Unreadable(uri) from exc
    finally:
        body.close()
    h.update(b"\x1d%d" % n)
    return _s3_identity(uri, resp), n == resp.get("ContentLength") and _s3_settled(resp)


def _s3_settled(resp: dict[str, Any]) -> bool:
    """The object was written at least SETTLE_SECONDS before S3 answered (S3's clock:
    LastModified and the response's Date)."""
    modified = resp.get("LastModified")
    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if modified is None or not date:
        return False
    try:
        answered = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    return (answered - modified).total_seconds() >= SETTLE_SECONDS


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


def _identity_now(source: MagentoCsvSource, uri: str, optional: bool) -> str:
    if uri.startswith("s3://"):
        if source.s3_client is None:
            raise _Unreadable(uri)
        bucket, key = _split_s3(uri)
        try:
            return _s3_identity(uri, source.s3_client.head_object(Bucket=bucket, Key=key))
        except Exception as exc:
            if optional and _is_missing(exc):
                return f"{_ABSENT}:{uri}"
            raise _Unreadable(uri) from exc
    path = Path(uri.removeprefix("file://"))
    try:
        return _stat_identity(os.stat(path))
    except FileNotFoundError:
        if optional:
            return f"{_ABSENT}:{path}"
        raise _Unreadable(uri) from None
    except OSError as exc:
        raise _Unreadable(uri) from exc
