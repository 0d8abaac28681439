"""Peak resident memory of one scan, measured in a fresh process.

    python benchmarks/peak_memory.py FILE --model HUBERT_BASE [--encoding shared]

Prints one JSON line: the peak RSS of the whole process (``VmHWM``: unlike
``ru_maxrss`` it is not inherited from the parent across fork and exec), the
RSS once the model is built (before scanning) and the scan's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", type=Path)
    ap.add_argument("--model", default="HUBERT_BASE")
    ap.add_argument("--encoding", default="shared", choices=["shared", "per_window"])
    args = ap.parse_args(argv)

    from models import MODELS

    from audio_embed.scanner import Scanner
    from audio_embed.windows import SlidingWindows

    scanner = Scanner(MODELS[args.model](), scan_windows=SlidingWindows(8.0, 1.0, args.encoding))
    model_rss = _status_mb("VmRSS")
    t0 = time.perf_counter()
    entry = scanner.sliding_embeddings(args.file)
    wall = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    print(
        json.dumps(
            {
                "model": args.model,
                "encoding": args.encoding,
                "duration_s": entry.duration,
                "windows": len(entry.starts),
                "rss_after_model_mb": round(model_rss, 1),
                "peak_rss_mb": round(peak, 1),
                "scan_s": round(wall, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
