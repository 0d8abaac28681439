"""ScannerStore: several writers at once each keep their scanner."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import cast

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
