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
    assert "If it is damaged, earlier versions of it are in" in caplog.text


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


def test_names_that_are_not_plain_names_are_refused_before_any_file_is_touched(
    tmp_path: Path,
) -> None:
    """restore(version="../x") read (and, were it a scanner, restored) a file outside
    the profile's versions; an embedder name took the same path (load(p, "../../x")).
    Names are plain names the store wrote; nothing outside the store is read."""
    from audio_embed.errors import InvalidInputError, ScannerFileError

    store = ScannerStore(tmp_path / "store")
    store.save(cast(Scanner, _FakeScanner("first")), "horn")
    store.save(cast(Scanner, _FakeScanner("second")), "horn")
    (version,) = store.versions("horn", "LOGMEL")
    outside = tmp_path / "store" / "versions" / "x.scanner"  # beside the profile's folder
    outside.write_text("not theirs")
    for bad in ("../x", "..", "a/b", "a\\b", "/abs/x", ".hidden", f"{version}\n", ""):
        with pytest.raises(InvalidInputError, match="not a path"):
            store.restore("horn", "LOGMEL", bad)
    with pytest.raises(ScannerFileError, match="No version 'x'"):
        store.restore("horn", "LOGMEL", "x")
    for embedder in ("../../x", "LOGMEL/..", ".LOGMEL", "a:b"):
        for call in (store.path, store.versions, store.load):
            with pytest.raises(InvalidInputError, match="embedder name"):
                call("horn", embedder)
        with pytest.raises(InvalidInputError, match="embedder name"):
            store.restore("horn", embedder, version)
    with pytest.raises(InvalidInputError, match="profile name"):
        store.load("horn\n", "LOGMEL")
    assert store.path("horn", "LOGMEL").read_text() == "second"
    assert outside.read_text() == "not theirs"


def test_a_copy_stopped_half_way_is_neither_a_version_nor_a_scanner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An archive copy or a save killed before its rename leaves ".tmp-….scanner": it was
    listed as a version (and could be restored: half a file) and as a profile."""
    store = ScannerStore(tmp_path / "store")
    store.save(cast(Scanner, _FakeScanner("first")), "horn")
    store.save(cast(Scanner, _FakeScanner("second")), "horn")
    vdir = tmp_path / "store" / "versions" / "horn_LOGMEL"
    (vdir / ".tmp-ab_cd.scanner").write_bytes(b"PK\x03\x04 half")
    (tmp_path / "store" / ".tmp-x_y.scanner").write_bytes(b"PK\x03\x04 half")
    assert len(store.versions("horn", "LOGMEL")) == 1
    store.list()
    assert ".tmp-x_y" not in caplog.text  # not warned about as a damaged scanner
