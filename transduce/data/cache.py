"""The training-data cache: a folder of entries, each built once from the training files and
reused by later runs, by the other ranks of a DDP run and by parallel runs.

An entry is a folder named ``<kind>-<key>``: the key hashes everything the entry was built from
(:func:`entry_name`: the files' paths, sizes and modification times, the settings), so a change
of data or settings names another entry and builds it, and the old one is never read again.
``meta.json`` in it says what it was built from and what the build logged (replayed on reuse, so
train.log reads the same either way). Which entries there are, and what builds them, is
``data/training_set.py``'s business; this module only keeps them sound:

- **atomic**: an entry is built in ``<name>.tmp-<pid>/`` and renamed into place when complete
  (its files fsynced first); ``meta.json`` lists its files with their sizes, and an entry whose
  files do not match (a copy cut short, a disk that lost them) reads as absent and is rebuilt.
  A crash mid-build leaves only the ``.tmp-`` folder, removed by the next build.
- **one builder**: a build holds the folder's ``lock`` file (``flock``); another process that
  wants an entry being built waits for the lock, then finds the entry and reuses it.
- **no stale entries**: after each build, entries whose source files changed or vanished are
  removed (their key can never match again).

Deleting the whole folder is always safe between runs: what is missing is rebuilt.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from transduce.errors import TransduceError

log = logging.getLogger("transduce")
VERSION = 1  # of the entries' layout and keys: part of every key
META, LOCK = "meta.json", "lock"


def file_ids(paths: Iterable[Path]) -> list[list]:
    """``[absolute path, size, modification time in ns]`` of each file (``-1, -1`` for a
    missing one: the step that reads it reports that)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(Path(p).resolve()), -1, -1])
    return out


def entry_name(kind: str, *parts: Any) -> str:
    """``<kind>-<16 hex digits>``: a hash of :data:`VERSION`, ``kind`` and ``parts`` (JSON
    values)."""
    blob = json.dumps([VERSION, kind, *parts], sort_keys=True)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Capture(logging.Handler):
    """The records a build logs (those its logger lets through), as ``[level, message]``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[list] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append([record.levelno, record.getMessage()])


class Cache:
    """The cache folder ``root`` (created when the first entry is built)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, name: str, sources: list[list], what: str,
              build: Callable[[Path], dict]) -> tuple[Path, dict]:
        """The entry ``name`` and its meta: reused if complete, else built by ``build(folder)``,
        which writes its files into ``folder`` and returns what meta.json should hold beside
        them. ``sources``: :func:`file_ids` of the files it is built from (an entry goes when
        they change); ``what`` names it in the log."""
        path = self.root / name
        meta = self._complete(path)
        if meta is None:
            with self._lock():
                meta = self._complete(path)  # built by another process while this one waited
                if meta is None:
                    return path, self._build(path, sources, what, build)
        log.info("data cache: reused %s (%s, %s)", path, what, megabytes(meta["bytes"]))
        for level, message in meta["log"]:
            log.log(level, "%s", message)
        return path, meta

    @contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.root / LOCK, "a")
        except OSError as e:
            raise TransduceError(f"{self.root}: cannot write the training-data cache there "
                                 f"({e.strerror}); set data.cache_dir to a writable folder") \
                from None
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _build(self, path: Path, sources: list[list], what: str,
               build: Callable[[Path], dict]) -> dict:
        """Under the lock: sweep, build into a temporary folder, rename it into place."""
        self._sweep()
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        tic, capture = time.perf_counter(), _Capture()
        log.addHandler(capture)
        try:
            info = build(tmp)
            log.removeHandler(capture)
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
            meta = {**info, "version": VERSION, "what": what, "sources": sources,
                    "files": files, "bytes": sum(files.values()), "log": capture.records,
                    "seconds": round(time.perf_counter() - tic, 1)}
            for p in tmp.iterdir():
                _fsync(p)
            (tmp / META).write_text(json.dumps(meta, indent=1))
            _fsync(tmp / META)
            if path.exists():  # a damaged entry of this name
                _remove(path)
            os.rename(tmp, path)
            _fsync(self.root)
        except BaseException:
            log.removeHandler(capture)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("data cache: built %s (%s, %s) in %.1f s", path, what, megabytes(meta["bytes"]),
                 meta["seconds"])
        return meta

    @staticmethod
    def _complete(path: Path) -> dict | None:
        """The meta of a complete entry at ``path``, else None."""
        try:
            meta = json.loads((path / META).read_text())
            ok = meta.get("version") == VERSION and all(
                (path / name).stat().st_size == size for name, size in meta["files"].items())
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        return meta if ok else None

    def _sweep(self) -> None:
        """Under the lock (no build runs): remove left-overs of killed builds and removals, and
        entries whose source files changed or vanished."""
        for p in self.root.iterdir():
            if ".tmp-" in p.name or ".del-" in p.name:
                shutil.rmtree(p, ignore_errors=True)
                continue
            meta = self._complete(p) if p.is_dir() else None
            if meta is not None and file_ids(Path(s[0]) for s in meta["sources"]) != \
                    meta["sources"]:
                log.info("data cache: removed %s (its source files changed)", p)
                _remove(p)


def _remove(path: Path) -> None:
    """Rename out of the way, then delete: a half-deleted entry never keeps its name."""
    gone = path.with_name(f"{path.name}.del-{os.getpid()}")
    os.rename(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
