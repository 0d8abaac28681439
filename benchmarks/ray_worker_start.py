r"""Where a Ray model worker's CPU goes: its start, its scanner's load, each file.

Scans ``--files`` synthetic files of ``--seconds`` with one LOGMEL scanner (as
``test_ray_scale.py`` builds it) on a local Ray with 2 CPUs, ``--runs`` times
one worker × one thread after a warm-up run, through a ``ModelWorker`` that
notes its process's CPU seconds (user + system) at each step:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ray_worker_start.py [--files 4] [--seconds 60]

One line per worker: CPU before its constructor (the process's start: Python,
Ray, Ray Data, and torch, which the scanner's embedder factory imports), the
import of skops, building the scanner (``Scanner.load`` of its bytes), and
scoring each file; then the CPU seconds of every process of the run, as
``test_ray_scale.py`` splits them. The first fresh worker's numbers include
nothing of the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from audio_embed._ray_worker import ModelWorker  # noqa: E402

LOG_ENV = "AUDIO_EMBED_BENCH_WORKER_LOG"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class TimedWorker(ModelWorker):
    """A :class:`ModelWorker` that appends its CPU seconds per step to ``$LOG_ENV``."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.steps: dict[str, Any] = {"pid": os.getpid(), "before constructor": _cpu()}
        c = _cpu()
        import skops.io  # noqa: F401

        self.steps["import skops"] = _cpu() - c
        c = _cpu()
        super().__init__(job)
        self.steps["build scanner"] = _cpu() - c
        self.steps["files"] = []
        self._write()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        c = _cpu()
        out = super().__call__(row)
        self.steps["files"].append(round(_cpu() - c, 3))
        self._write()
        return out

    def _write(self) -> None:
        Path(os.environ[LOG_ENV], f"{os.getpid()}.json").write_text(json.dumps(self.steps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import psutil
    import ray
    from models import logmel, random_scanner, write_recording

    import audio_embed._ray_pipeline as pipeline
    from audio_embed.distributed import RayOptions, RayScanner

    tmp = Path(tempfile.mkdtemp(prefix="ray-worker-start-"))
    (tmp / "log").mkdir()
    os.environ[LOG_ENV] = str(tmp / "log")
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), path) if p)
    pipeline.ModelWorker = TimedWorker  # type: ignore[misc]
    files = [
        str(write_recording(tmp / f"rec_{i}.wav", args.seconds, seed=i)) for i in range(args.files)
    ]
    scanner = random_scanner(logmel())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        warm = RayOptions(workers=2, threads=1, embedder_factory=logmel)
        list(RayScanner.from_scanner(scanner, warm, progress_bar=False).scan_many(files[:2]))
        for _ in range(args.runs):
            for f in (tmp / "log").iterdir():
                f.unlink()
            me = psutil.Process()
            before = {p.pid: sum(p.cpu_times()[:2]) for p in me.children(recursive=True)}
            options = RayOptions(workers=1, threads=1, embedder_factory=logmel)
            runner = RayScanner.from_scanner(scanner, options, progress_bar=False)
            t0, load = time.perf_counter(), os.getloadavg()[0]
            n = sum(1 for _p, r in runner.scan_many(files) if not isinstance(r, Exception))
            wall = time.perf_counter() - t0
            time.sleep(0.5)  # the worker's last notes
            kinds: dict[str, float] = {}
            for p in me.children(recursive=True):
                try:
                    title = " ".join(p.cmdline())
                    spent = sum(p.cpu_times()[:2]) - before.get(p.pid, 0.0)
                except psutil.Error:
                    continue
                kind = (
                    "model worker"
                    if "TimedWorker" in title
                    else "decode tasks"
                    if "decode_row" in title or title.startswith("ray::IDLE")
                    else "Ray services"
                )
                kinds[kind] = round(kinds.get(kind, 0.0) + spent, 2)
            for f in (tmp / "log").iterdir():
                steps = json.loads(f.read_text())
                steps["files"] = f"{len(steps['files'])} files, {sum(steps['files']):.2f} s"
                steps = {k: round(v, 2) if isinstance(v, float) else v for k, v in steps.items()}
                print(json.dumps({"wall_s": round(wall, 2), "load": load, "scanned": n, **steps}))
            print(json.dumps({"CPU s by process": kinds}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
