"""Peak resident memory scanning a long file (default 60 minutes), in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import record
from models import write_recording

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    minutes = float(pytestconfig.getoption("--memory-minutes"))
    return write_recording(tmp_path_factory.mktemp("long") / "long.wav", minutes * 60.0, seed=7)


def test_peak_memory(long_recording: Path, pytestconfig: pytest.Config, benchmark: Any) -> None:
    models = [m.strip().upper() for m in str(pytestconfig.getoption("--memory-models")).split(",")]

    def measure() -> list[dict[str, Any]]:
        rows = []
        for model in filter(None, models):
            out = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "peak_memory.py"),
                    str(long_recording),
                    "--model",
                    model,
                    "--encoding",
                    "shared",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        return rows

    for row in benchmark.pedantic(measure, rounds=1, iterations=1):
        record("Peak resident memory (fresh process, one scan)", row)
