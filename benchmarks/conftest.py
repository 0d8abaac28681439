"""Options, shared fixtures and the results table of the speed benchmarks.

Run (not part of the test suite: ``tests/`` is the default test path)::

    .venv/bin/pytest benchmarks --benchmark-enable -s [--recording-seconds 600]

Every speed comparison is measured back to back in one process; the table at
the end (also written to ``.benchmarks/scan_speed.json``) reports ratios.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS: dict[str, list[dict[str, Any]]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("audio_embed benchmarks")
    group.addoption(
        "--recording-seconds",
        type=float,
        default=float(os.environ.get("AUDIO_EMBED_BENCH_SECONDS", 600)),
        help="length of the scanned recording (default 600 s, or $AUDIO_EMBED_BENCH_SECONDS)",
    )
    group.addoption(
        "--bench-models",
        default=os.environ.get("AUDIO_EMBED_BENCH_MODELS", ""),
        help="comma-separated models to benchmark (default: all)",
    )
    group.addoption(
        "--realweights-seconds",
        type=float,
        default=120.0,
        help="length of the recording the real-weights speed benchmark scans (default 120 s)",
    )
    group.addoption(
        "--repeats",
        type=int,
        default=1,
        help="scan each model this many times with each method and keep the best (default 1)",
    )
    group.addoption(
        "--train-seconds",
        type=float,
        default=60.0,
        help="length of each of the 4 training files (default 60 s)",
    )
    group.addoption(
        "--memory-minutes",
        type=float,
        default=60.0,
        help="length of the file scanned for peak memory (default 60 minutes)",
    )
    group.addoption(
        "--search-sizes",
        default="100000",
        help="comma-separated numbers of 768-d vectors for the ANN search benchmark "
        "(default 100000; 1000000 builds a graph for a long time on a small machine)",
    )
    group.addoption(
        "--memory-models",
        default="HUBERT_BASE,LOGMEL",
        help="models whose peak memory is measured (default HUBERT_BASE,LOGMEL)",
    )
    group.addoption(
        "--ray-files", type=int, default=20, help="files scanned by test_ray_scale (default 20)"
    )
    group.addoption(
        "--ray-file-seconds",
        type=float,
        default=20.0,
        help="length of each file of test_ray_scale (default 20 s)",
    )
    group.addoption(
        "--ray-methods",
        default="",
        help="comma-separated methods of test_ray_scale (default: all), e.g. "
        "'local 1 thread,ray 1x1'",
    )


def selected(config: pytest.Config, name: str) -> bool:
    wanted = [m.strip().upper() for m in str(config.getoption("--bench-models")).split(",")]
    return not any(wanted) or name in wanted


def record(table: str, row: dict[str, Any]) -> None:
    """Add a row to a results table (also appended to ``.benchmarks/rows.jsonl`` at once)."""
    RESULTS.setdefault(table, []).append(row)
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    with (out / "rows.jsonl").open("a") as fh:
        fh.write(json.dumps({"table": table, **row}, default=str) + "\n")


#: Per (table, key): each method's benchmark statistics, until all of a group are in.
PAIRS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


def record_method(
    table: str,
    key: dict[str, Any],
    method: str,
    benchmark: Any,
    methods: tuple[str, ...] = ("original", "ours"),
    columns: Callable[[dict[str, dict[str, Any]]], dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, dict[str, Any]] | None:
    """Keep one method's pytest-benchmark statistics (its best round, ``min``); once
    every method of ``key`` has run, add the row with their ratio and return them all.

    The ratio comes from the benchmarks' own statistics: each method is its own
    benchmark (grouped per model), measured in the same process.
    """
    stats = benchmark.stats.stats if benchmark.stats else None
    entry = {"min": stats.min if stats else float("nan"), **extra}
    group = PAIRS.setdefault((table, json.dumps(key, sort_keys=True)), {})
    group[method] = entry
    if set(group) != set(methods):
        return None
    first, second = methods
    row = {**key, **{f"{m}_s": group[m]["min"] for m in methods}}
    row[f"speedup_{second}_vs_{first}"] = group[first]["min"] / group[second]["min"]
    if columns is not None:
        row.update(columns(group))
    record(table, row)
    return group


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    from models import write_recording

    seconds = float(pytestconfig.getoption("--recording-seconds"))
    return write_recording(tmp_path_factory.mktemp("rec") / "recording.wav", seconds)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(
        f"audio_embed benchmarks — {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    for table, rows in RESULTS.items():
        write("")
        write(f"### {table}")
        columns = list(dict.fromkeys(k for row in rows for k in row))
        write("| " + " | ".join(columns) + " |")
        write("|" + "---|" * len(columns))
        for row in rows:
            write("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "scan_speed.json").write_text(json.dumps(RESULTS, indent=2, default=str))
