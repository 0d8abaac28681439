"""Scanning many files: finding the inputs, naming their outputs."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import attrs

__all__ = ["Input", "collect_inputs", "output_paths"]


@attrs.frozen
class Input:
    """One file to process: its path and its name relative to the --out folder."""

    path: Path
    rel: Path


def collect_inputs(items: Sequence[str]) -> tuple[list[Input], list[tuple[str, str]]]:
    """Files as given, and media files found recursively in directories.

    Returns the inputs and ``(item, reason)`` for arguments that name nothing.
    Hidden files and folders (a leading dot) are skipped inside directories.
    """
    from audio_embed.audio import is_media_file

    found: list[Input] = []
    missing: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(Input(path, rel))

    for item in items:
        p = Path(item)
        if p.is_dir():
            hits = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and is_media_file(name):
                        hits.append(Path(root) / name)
            if not hits:
                missing.append((item, "no audio or video files in this folder"))
            for f in hits:
                add(f, f.relative_to(p))
        elif p.exists():
            add(p, Path(p.name))
        else:
            missing.append((item, "no such file or directory"))
    return found, missing


def output_paths(
    inputs: Sequence[Input], out_dir: Path, suffix: str, reserved: Sequence[str] = ()
) -> dict[Path, Path]:
    """``out_dir/<relative folder>/<stem><suffix>`` per input, unique.

    When two inputs share a stem (``a.wav`` and ``a.mp4``), both use their full
    name (``a.wav.csv``, ``a.mp4.csv``), and a number is added if still needed.
    """

    def safe(rel: Path) -> Path:  # never write outside out_dir
        return Path(rel.name) if rel.is_absolute() or ".." in rel.parts else rel

    inputs = [Input(inp.path, safe(inp.rel)) for inp in inputs]
    stems: dict[Path, int] = defaultdict(int)
    for inp in inputs:
        stems[inp.rel.parent / (inp.rel.stem + suffix)] += 1
    taken = {Path(r) for r in reserved}
    out: dict[Path, Path] = {}
    for inp in inputs:
        rel = inp.rel.parent / (inp.rel.stem + suffix)
        if stems[rel] > 1 or rel in taken:
            rel = inp.rel.parent / (inp.rel.name + suffix)
        base, n = rel, 2
        while rel in taken:
            rel = base.parent / f"{base.name[: -len(suffix)]}-{n}{suffix}"
            n += 1
        taken.add(rel)
        out[inp.path] = out_dir / rel
    return out
