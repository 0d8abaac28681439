"""Pictures of scan results: the score over time with the labelled events and the
detections (needs matplotlib: ``pip install 'audio_embed[plot]'``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from audio_embed._io import atomic_writer
from audio_embed.batch import Input, output_paths
from audio_embed.detect import format_threshold
from audio_embed.evaluation import relative_name

if TYPE_CHECKING:
    from audio_embed.evaluate import LabelledEvent
    from audio_embed.evaluation import LabelledSet
    from audio_embed.progress import CancelToken
    from audio_embed.scanner import ScanResult
    from audio_embed.types import Detection

__all__ = ["plot_result", "plot_results"]


def plot_result(
    path: str | os.PathLike[str],
    result: ScanResult,
    detections: Sequence[Detection] | None = None,
    events: Sequence[LabelledEvent] = (),
    *,
    target: str = "target",
    threshold: float | None = None,
    title: str | None = None,
) -> Path:
    """A PNG of the score over time with the labelled events (``target`` in green,
    other labels in grey) and the detections (red), written atomically to ``path``.

    Only ``path`` and ``result`` are needed (``plot_result("a.png", scanner.scan("a.wav"))``):
    ``threshold`` defaults to the result's, ``detections`` to its detections at that
    threshold, ``events`` to none and ``title`` to the result's source."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    threshold = result.threshold if threshold is None else threshold
    detections = result.detections(threshold) if detections is None else detections
    title = result.source if title is None else title
    fig = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for e in events:
        colour, alpha = ("tab:green", 0.35) if e.label == target else ("0.6", 0.2)
        ax.axvspan(e.onset, e.offset, color=colour, alpha=alpha, lw=0)
    for d in detections:
        ax.axvspan(d.start, d.end, ymin=0.92, ymax=1.0, color="tab:red", alpha=0.8, lw=0)
    centres = result.starts + result.window / 2.0
    ax.plot(centres, result.probabilities, color="tab:blue", lw=1.0, label="score")
    ax.axhline(
        threshold,
        color="tab:red",
        ls="--",
        lw=0.8,
        label=f"threshold {format_threshold(threshold)}",
    )
    ax.set_xlim(0, max(result.duration, 1e-3))
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(target)")
    ax.set_title(title, fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    if events:  # no labelled events (one scan in a notebook): no legend for them
        handles += [
            Patch(color="tab:green", alpha=0.35, label=f"labelled {target!r}"),
            Patch(color="0.6", alpha=0.2, label="other labels"),
        ]
    handles.append(Patch(color="tab:red", alpha=0.8, label="detections"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=5)
    fig.tight_layout()
    with atomic_writer(path) as fh:
        fig.savefig(fh, format="png")
    return Path(path)


def plot_results(
    results: Mapping[str, ScanResult],
    labelled: LabelledSet,
    plot_dir: str | os.PathLike[str],
    *,
    threshold: float,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """:func:`plot_result` for every result, into ``plot_dir`` (named after the
    file relative to the labels' folder: ``test/a.wav`` -> ``test/a.png``)."""
    inputs = [Input(Path(k), Path(relative_name(k, labelled.root))) for k in results]
    names = output_paths(inputs, Path(plot_dir), ".png")
    written = []
    for inp in inputs:
        if cancel is not None:
            cancel.check()
        r = results[str(inp.path)]
        written.append(
            plot_result(
                names[inp.path],
                r,
                r.detections(threshold),
                labelled.every.get(str(inp.path), ()),
                target=labelled.target,
                threshold=threshold,
                title=str(inp.rel),
            )
        )
    return written
