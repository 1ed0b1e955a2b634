"""Spill files: encoded items partitioned by state bucket on local disk.

The reindex streams the source once, spilling each encoded item into its
bucket's file, then diffs one bucket at a time: memory holds one bucket's items
(and a few buckets' decoded state), never the catalog.
"""

from __future__ import annotations

import marshal
import struct
from pathlib import Path
from typing import IO

from catalog_sync.sync.canonical import EncodedItem

_ITEM = b"I"
_KEEP = b"K"
_SAME = b"S"
_SAMES = b"M"  # many `_SAME` groups of one bucket: a marshalled list, lower-cased
_MARSHAL_VERSION = 2  # lists of str; readable by every Python 3 (a hand-on stages these)
_LEN = struct.Struct("<III")  # key, hash, body lengths
_KLEN = struct.Struct("<I")


class BucketSpill:
    """`segment` names this writer's files, so that worker processes can spill
    into the same folder side by side; `adopt` makes `read` take a segment in."""

    def __init__(self, workdir: Path, buckets: int, segment: str = "") -> None:
        self.workdir = workdir
        self.buckets = buckets
        self.segment = segment
        self.segments = [segment]  # read in this order
        self._files: dict[int, IO[bytes]] = {}
        self.items = 0
        self._sealed: set[str] = set()

    def _path(self, bucket: int, segment: str) -> Path:
        return self.workdir / f"spill-{bucket:04d}{segment}.bin"

    def _file(self, bucket: int) -> IO[bytes]:
        f = self._files.get(bucket)
        if f is None:
            f = open(self._path(bucket, self.segment), "wb", buffering=1 << 16)  # noqa: SIM115
            self._files[bucket] = f
        return f

    def adopt(self, segment: str, items: int) -> None:
        """Read the files another writer spilled as `segment` (its item count)."""
        self.segments.append(segment)
        self.items += items

    def seal(self, tag: str) -> None:
        """Move the segments adopted since the last seal aside (renamed `<segment>.<tag>`):
        a read compiled in chunks (`sync.readstep`) starts new worker processes per
        chunk, and they write under the same segment names again."""
        for i, segment in enumerate(self.segments):
            if i == 0 or segment in self._sealed:
                continue
            sealed = f"{segment}.{tag}"
            for bucket in range(self.buckets):
                path = self._path(bucket, segment)
                if path.exists():
                    path.rename(self._path(bucket, sealed))
            self.segments[i] = sealed
            self._sealed.add(sealed)

    def add(self, bucket: int, item: EncodedItem) -> None:
        key = item.key.encode("utf-8")
        h = item.hash.encode("ascii")
        f = self._file(bucket)
        f.write(_ITEM + _LEN.pack(len(key), len(h), len(item.body)))
        f.write(key)
        f.write(h)
        f.write(item.body)
        self.items += 1

    def keep(self, bucket: int, group: str) -> None:
        """Mark a group whose record was rejected: its items keep their state."""
        g = group.encode("utf-8")
        self._file(bucket).write(_KEEP + _KLEN.pack(len(g)) + g)

    def same(self, bucket: int, group: str) -> None:
        """Mark a group whose record was not built (its fingerprint was known): its
        items are read and unchanged, as the state and the previous part hold them."""
        g = group.encode("utf-8", "surrogateescape")
        self._file(bucket).write(_SAME + _KLEN.pack(len(g)) + g)

    def same_many(self, marks: list[tuple[int, str]]) -> None:
        """`same(bucket, group)` for each (bucket, group) of `marks`: one frame per
        bucket, its groups lower-cased in one marshalled list (`read` takes it in at C
        speed: a 1% sync marks 99% of the catalog so)."""
        groups: dict[int, list[str]] = {}
        for bucket, group in marks:
            if (held := groups.get(bucket)) is None:
                groups[bucket] = [group.lower()]
            else:
                held.append(group.lower())
        for bucket, held in groups.items():
            blob = marshal.dumps(held, _MARSHAL_VERSION)
            self._file(bucket).write(_SAMES + _KLEN.pack(len(blob)) + blob)

    def finish(self) -> None:
        for f in self._files.values():
            f.close()

    def bucket_files(self, bucket: int) -> list[Path]:
        """The files spilled for a bucket, in read order (to stage them elsewhere:
        their concatenation reads as the bucket)."""
        paths = [self._path(bucket, segment) for segment in self.segments]
        return [p for p in paths if p.exists()]

    def drop(self, bucket: int) -> None:
        """Delete a bucket's files (read with `consume=False`)."""
        for segment in self.segments:
            self._path(bucket, segment).unlink(missing_ok=True)

    def read(
        self, bucket: int, *, consume: bool = True
    ) -> tuple[dict[str, EncodedItem], set[str], set[str], list[str]]:
        """Items of a bucket by key, the kept groups and the unchanged ones (both
        lower-cased), and duplicate keys; `consume=False` keeps the bucket's files for
        another read (then `drop` them)."""
        items: dict[str, EncodedItem] = {}
        keep: set[str] = set()
        same: set[str] = set()
        duplicates: list[str] = []
        for segment in self.segments:
            path = self._path(bucket, segment)
            if not path.exists():
                continue
            data = path.read_bytes()
            if consume:
                path.unlink()
            pos, end = 0, len(data)
            unpack_len, unpack_klen = _LEN.unpack_from, _KLEN.unpack_from
            while pos < end:
                kind = data[pos : pos + 1]
                pos += 1
                if kind == _SAMES:
                    (n,) = unpack_klen(data, pos)
                    pos += _KLEN.size
                    same.update(marshal.loads(data[pos : pos + n]))
                    pos += n
                    continue
                if kind in (_KEEP, _SAME):
                    (n,) = unpack_klen(data, pos)
                    pos += _KLEN.size
                    group = data[pos : pos + n].decode("utf-8", "surrogateescape").lower()
                    (keep if kind == _KEEP else same).add(group)
                    pos += n
                    continue
                kl, hl, bl = unpack_len(data, pos)
                pos += _LEN.size
                key = data[pos : pos + kl].decode("utf-8")
                pos += kl
                h = data[pos : pos + hl].decode("ascii")
                pos += hl
                if key in items:
                    duplicates.append(key)
                items[key] = EncodedItem(key, "", h, data[pos : pos + bl])
                pos += bl
        return items, keep, same, duplicates
