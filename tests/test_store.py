"""ScannerStore: several writers at once each keep their scanner."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import cast

import pytest
from attrs import define, field

from audio_embed._io import atomic_writer
from audio_embed.scanner import Scanner
from audio_embed.store import ScannerStore


@define
class _Embedder:
    name: str = "LOGMEL"


@define
class _FakeScanner:
    """What ScannerStore.save touches: the embedder's name and save(path)."""

    tag: str
    embedder: _Embedder = field(factory=_Embedder)

    def save(self, path: Path) -> Path:
        time.sleep(0.02)  # a real save takes a while: room for another writer
        with atomic_writer(path) as fh:
            fh.write(self.tag.encode())
        return path


def test_concurrent_saves_lose_no_scanner(tmp_path: Path) -> None:
    store = ScannerStore(tmp_path / "store")
    store.save(cast(Scanner, _FakeScanner("first")), "horn")
    n = 6
    barrier = threading.Barrier(n)

    def save(i: int) -> None:
        barrier.wait()
        store.save(cast(Scanner, _FakeScanner(f"take {i}")), "horn")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = tmp_path / "store" / "versions" / "horn_LOGMEL"
    kept = sorted(p.read_text() for p in versions.glob("*.scanner"))
    kept.append(store.path("horn", "LOGMEL").read_text())
    assert sorted(kept) == sorted(["first", *(f"take {i}" for i in range(n))])
    assert len(store.versions("horn", "LOGMEL")) == n


def test_a_full_disk_while_archiving_leaves_no_damaged_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of the current scanner into versions/ is all or nothing (before: a full
    disk left half a file there, listed as a version)."""
    import errno
    import os
    import shutil

    store = ScannerStore(tmp_path / "store")
    store.save(cast(Scanner, _FakeScanner("first")), "horn")

    def disk_full(*args: object, **kwargs: object) -> None:
        dst = args[1]
        if isinstance(dst, int):  # os.sendfile(out_fd, in_fd, offset, count)
            os.write(dst, b"fi")
        else:
            dst.write(b"fi")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", disk_full)
    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save(cast(Scanner, _FakeScanner("second")), "horn")
    monkeypatch.undo()
    assert store.versions("horn", "LOGMEL") == []
    versions = tmp_path / "store" / "versions" / "horn_LOGMEL"
    assert list(versions.iterdir()) == []  # no temporary file either
    assert store.path("horn", "LOGMEL").read_text() == "first"


def test_a_damaged_current_scanner_is_named_when_the_store_is_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated horn_LOGMEL.scanner is not listed, with a warning naming it (before:
    silently absent, so `scan --store DIR --profile horn` said none was stored)."""
    store = ScannerStore(tmp_path)
    (tmp_path / "horn_LOGMEL.scanner").write_bytes(b"PK\x03\x04 half a file")
    assert store.list() == []
    assert "horn_LOGMEL.scanner is not a readable scanner file" in caplog.text
    assert "restore an earlier version" in caplog.text


def test_a_held_lock_is_waited_for_with_a_word_then_refused_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped writer's lock does not hang every later save: a warning while waiting,
    then an error naming the lock file (the reviewer's hang: no timeout, no message)."""
    from filelock import FileLock

    from audio_embed._io import writer_lock
    from audio_embed.errors import AudioEmbedError

    lock = tmp_path / ".lock"
    other = FileLock(lock)
    other.acquire()
    try:
        with caplog.at_level("WARNING", logger="audio_embed"):
            with pytest.raises(AudioEmbedError, match=r"\.lock is still held"):
                with writer_lock(lock, "the test store", timeout=0.3):
                    pass
        assert "Waiting for" in caplog.text and "the test store" in caplog.text
    finally:
        other.release()
    with writer_lock(lock, "the test store", timeout=0.3):
        pass
