"""Pass 1's output: rows framed and spilled into partitions by SKU; pass 2 reads one partition at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xxhash
from xxhash import xxh3_64_intdigest

from catalog_sync.records import Rejected, SourceIssue, Unchanged

if TYPE_CHECKING:
    from catalog_sync.sources.magento_csv.source import MagentoCsvSource

import contextlib
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any, overload

from catalog_sync.catalog import (
    CatalogProduct,
)
from catalog_sync.sources.inventory import StockDef
from catalog_sync.sources.magento_csv.builder import _Builder
from catalog_sync.sources.magento_csv.columns import _FRAME, _Columns


class _Spill:
    """Frames by partition: in memory for one partition, else one file each
    (`suffix`: a byte range's own files, `ranges`)."""

    def __init__(self, parts: int, tmp: Path | None, suffix: str = "") -> None:
        self.parts = parts
        self.tmp = tmp
        self._mem: list[tuple[str, bytes, int, bytes]] = []
        self._files: list[IO[bytes]] = []
        if tmp is not None:
            self._files = [
                open(tmp / f"part-{i:04d}.bin{suffix}", "wb", buffering=1 << 16)  # noqa: SIM115
                for i in range(parts)
            ]

    def add(self, key: str, kind: bytes, line: int, payload: bytes) -> None:
        if self.tmp is None:
            self._mem.append((key, kind, line, payload))
            return
        k = key.encode("utf-8", "surrogateescape")
        f = self._files[zlib.crc32(k) % self.parts]
        f.write(_FRAME.pack(kind, line, len(payload), len(k)))
        f.write(k)
        f.write(payload)

    def adopt(self, suffixes: list[str]) -> None:
        """Make the files that byte ranges spilled (`suffixes`, in file order) the
        partition files, which then hold every SKU's frames in file order as a
        serial pass 1 writes them: the first range's file by renaming it, the others
        appended (in the kernel where it can); the range files are removed."""
        assert self.tmp is not None
        for i, f in enumerate(self._files):
            f.close()
            path = self.tmp / f"part-{i:04d}.bin"
            os.replace(f"{path}{suffixes[0]}", path)
            with open(path, "r+b", buffering=0) as dst:
                dst.seek(0, os.SEEK_END)
                for suffix in suffixes[1:]:
                    with open(f"{path}{suffix}", "rb", buffering=0) as src:
                        _append(src, dst)
                    os.unlink(f"{path}{suffix}")
            self._files[i] = open(path, "ab", buffering=1 << 16)  # noqa: SIM115

    def finish(self) -> None:
        for f in self._files:
            f.close()

    def close(self) -> None:
        self.finish()
        self._mem = []

    def path(self, part: int) -> Path | None:
        return None if self.tmp is None else self.tmp / f"part-{part:04d}.bin"

    def take_memory(self) -> list[tuple[str, bytes, int, bytes]] | None:
        """The in-memory frames (one partition), handed over once."""
        if self.tmp is not None:
            return None
        mem, self._mem = self._mem, []
        return mem


def _append(src: IO[bytes], dst: IO[bytes]) -> None:
    """`src` at the end of `dst` (unbuffered files at their positions)."""
    size = os.fstat(src.fileno()).st_size
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or no such call here
        while size > 0:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size)
            if n == 0:
                break
            size -= n
    if size > 0:
        shutil.copyfileobj(src, dst, 1 << 20)


_Frames = list[tuple[bytes, int, bytes]]


def _memory_groups(mem: list[tuple[str, bytes, int, bytes]]) -> Iterator[tuple[str, _Frames]]:
    """(lower-cased SKU, frames), SKUs in first-seen order."""
    groups: dict[str, _Frames] = {}
    for key, kind, line, payload in mem:
        g = groups.get(key)
        if g is None:
            groups[key] = [(kind, line, payload)]
        else:
            g.append((kind, line, payload))
    mem.clear()
    yield from groups.items()


_Entry = tuple[bytes, int, int, int]  # kind, line, payload offset and length


def _file_index(path: Path) -> tuple[bytes, dict[bytes, list[_Entry]]]:
    """One partition file's bytes and its frames by SKU (lower-cased, UTF-8; offsets
    only, so memory holds the bytes once), SKUs in first-seen order; the file is
    removed once read. An unchanged record needs no more than this: its fingerprint
    is taken over the offsets (`_fingerprint_at`), its frames never cut out."""
    data = path.read_bytes()
    path.unlink()
    pos, size, unpack = 0, len(data), _FRAME.unpack_from
    hsize = _FRAME.size
    index: dict[bytes, list[_Entry]] = {}
    while pos < size:
        kind, line, plen, klen = unpack(data, pos)
        pos += hsize
        key = data[pos : pos + klen]
        pos += klen
        g = index.get(key)
        if g is None:
            index[key] = [(kind, line, pos, plen)]
        else:
            g.append((kind, line, pos, plen))
        pos += plen
    return data, index


def _frames_at(data: bytes, entries: list[_Entry]) -> _Frames:
    return [(k, ln, data[p : p + n]) for k, ln, p, n in entries]


def _file_groups(path: Path) -> Iterator[tuple[str, _Frames]]:
    """(lower-cased SKU, frames) of one partition file, SKUs in first-seen order."""
    data, index = _file_index(path)
    for key, entries in index.items():
        yield key.decode("utf-8", "surrogateescape"), _frames_at(data, entries)


Skip = Callable[[int], float | None]
# The mapping of rows to records: bump it when builder.py/cells.py make other records
# from the same rows (it voids every record fingerprint).
RECORD_VERSION = 2  # 2: rows framed as `_JOINED`, marshal version 2
_LEN = struct.Struct("<I")
UNCHANGED_BATCH = 4096  # records not built, reported together


def record_fingerprint(key: str, frames: _Frames) -> int:
    """XXH3-64 of a SKU's frames (kind and payload of its rows, parent links and
    row problems, in file order; not their line numbers) and the SKU itself."""
    parts = [key.encode("utf-8", "surrogateescape")]
    pack = _LEN.pack
    for kind, _line, payload in frames:
        parts.append(kind + pack(len(payload)))
        parts.append(payload)
    return xxh3_64_intdigest(b"".join(parts))


def _fingerprint_at(key: bytes, entries: list[_Entry], data: bytes) -> int:
    """`record_fingerprint` of frames at offsets of `data` (`key`: the SKU, UTF-8)."""
    parts = [key]
    pack = _LEN.pack
    for kind, _line, p, n in entries:
        parts.append(kind + pack(n))
        parts.append(data[p : p + n])
    return xxh3_64_intdigest(b"".join(parts))


def fingerprint_context(header: list[str], stocks: tuple[Any, ...] = ()) -> str:
    """What else than a SKU's frames (its rows, parent links, stock source rows)
    decides its record: the mapping, the header and the stock layout."""
    text = "\x1f".join(header) + "\x1e" + repr(stocks)
    digest = xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogateescape"))
    return f"magento-csv/{RECORD_VERSION}/{digest}"


class CsvPartition:
    """One partition of pass 2: builds the products of its SKUs. A file partition
    pickles as its path (to be built in a worker process)."""

    def __init__(
        self,
        header: list[str],
        wanted: frozenset[str] | None,
        path: Path | None,
        memory: list[tuple[str, bytes, int, bytes]] | None,
        stocks: tuple[StockDef, ...] = (),
    ) -> None:
        self.header = header
        self.stocks = stocks
        self.wanted = wanted
        self.path = path
        self.memory = memory
        self.built = 0  # products built by `records`

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise TypeError("an in-memory partition cannot leave its process")
        return {
            "header": self.header,
            "wanted": self.wanted,
            "path": self.path,
            "stocks": self.stocks,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["header"], state["wanted"], state["path"], None, state.get("stocks", ())
        )

    @overload
    def records(
        self, warn: Callable[[SourceIssue], None]
    ) -> Iterator[CatalogProduct | Rejected]: ...
    @overload
    def records(
        self, warn: Callable[[SourceIssue], None], skip: Skip
    ) -> Iterator[CatalogProduct | Rejected | Unchanged]: ...
    def records(
        self, warn: Callable[[SourceIssue], None], skip: Skip | None = None
    ) -> Iterator[CatalogProduct | Rejected | Unchanged]:
        """The partition's products (and rejections); `warn` takes warnings. With
        `skip` (see `sync.fingerprints.skipper`), each product gets the fingerprint of
        its rows, and one whose fingerprint `skip` knows is not built: `Unchanged`."""
        warned = 0

        def counted(issue: SourceIssue) -> None:
            nonlocal warned
            warned += 1
            warn(issue)

        builder = _Builder(_Columns(self.header), counted, self.stocks)
        wanted = self.wanted
        fp = 0
        skus: list[str] = []  # not built, yielded together (`Unchanged`)
        fps: list[int] = []
        untils: list[float] = []
        for key, data, entries in self._groups():
            if wanted is not None and key not in wanted:
                continue
            if skip is not None:
                if data is None:
                    fp = record_fingerprint(key, entries)
                else:
                    fp = _fingerprint_at(key.encode("utf-8", "surrogateescape"), entries, data)
                until = skip(fp)
                if until is not None:
                    skus.append(key)
                    fps.append(fp)
                    untils.append(until)
                    if len(skus) >= UNCHANGED_BATCH:
                        self.built += len(skus)
                        yield Unchanged(skus, fps, untils)
                        skus, fps, untils = [], [], []
                    continue
            frames = entries if data is None else _frames_at(data, entries)
            before = warned
            product = builder.build(frames)
            if product is None:
                continue
            if isinstance(product, CatalogProduct):
                self.built += 1
                if skip is not None and warned == before:
                    product.fingerprint = fp
            yield product
        if skus:
            self.built += len(skus)
            yield Unchanged(skus, fps, untils)

    def _groups(self) -> Iterator[tuple[str, bytes | None, Any]]:
        """(SKU, partition bytes, frame offsets) of a file partition; (SKU, None,
        frames) of an in-memory one."""
        if self.path is not None:
            if not self.path.exists():
                return
            data, index = _file_index(self.path)
            for raw, entries in index.items():
                yield raw.decode("utf-8", "surrogateescape"), data, entries
        else:
            for key, frames in _memory_groups(self.memory or []):
                yield key, None, frames


class CsvSplit:
    """What `MagentoCsvSource.split` gives: pass 1's rejections and the partitions."""

    def __init__(
        self, rejected: list[Rejected], partitions: list[CsvPartition], source: MagentoCsvSource
    ) -> None:
        self.rejected = rejected
        self.partitions = partitions
        self._source = source
        # what decides a record besides its rows (`sync.fingerprints`)
        self.fingerprint_context = (
            fingerprint_context(partitions[0].header, partitions[0].stocks) if partitions else None
        )

    def warn(self, issue: SourceIssue) -> None:
        self._source._issue(issue)

    def merge(self, records: int, warnings: Collection[SourceIssue] = ()) -> None:
        """Count products built (and their warnings) into the source's report."""
        self._source._report.records += records
        for issue in warnings:
            self._source._issue(issue)
