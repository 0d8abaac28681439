"""The training summary as text: :meth:`Scanner.describe`, which ``audio-embed
train`` prints line by line."""

from __future__ import annotations

import inspect
import json
import os
from typing import TYPE_CHECKING

from audio_embed.detect import format_threshold
from audio_embed.evaluation import relative_name
from audio_embed.threshold import held_out_counts

if TYPE_CHECKING:
    from audio_embed.scanner.core import Scanner

__all__ = ["describe"]


def _postprocessing(scanner: Scanner) -> list[str]:
    """What the post-processing was sized from: the marked selections, the durations
    estimated from the points, or (points of short sounds) a hint."""
    pp = (scanner.training_summary or {}).get("postprocessing") or {}
    post, window = scanner.scan_postprocessing, scanner.scan_windows.window
    lines: list[str] = []
    if pp.get("source") == "selections":
        lines.append(f"Post-processing sized {pp['reason']}.")
    elif pp.get("source") == "points (estimated)":
        lines.append(
            f"Post-processing sized from the marked sounds' durations, {pp['reason']}. "
            "Marking each sound as a selection (start and end) gives the true durations."
        )
    elif pp.get("source") == "points":
        about = (
            f", the marked sounds about {pp['estimated_duration']:g} s long (estimated)"
            if pp.get("estimated_duration")
            else ""
        )
        lines.append(
            f"Markers are points{about}: detections follow the scores (hysteresis "
            f"{post.hysteresis:g}). For sounds longer than the {window:g} s window, mark each "
            "as a selection (start and end: Audacity labels, Raven selections): training then "
            "learns the whole sound and sizes the post-processing from the marked durations."
        )
    return lines


def _model_settings(scanner: Scanner) -> list[str]:
    """The model's own settings that are not its defaults (``--model-option``), and its
    weights when they are not the default ones: nothing for a default model, or one not
    registered here (its defaults are unknown)."""
    from audio_embed.errors import UnknownEmbedderError
    from audio_embed.registry import get_spec, setting_defaults, setting_text

    embedder = scanner.embedder
    try:
        spec = get_spec(embedder.name)
        defaults = setting_defaults(embedder.name) or {}
    except UnknownEmbedderError:
        return []
    parts = []
    for key, value in embedder.settings().items():
        default = defaults.get(key, inspect.Parameter.empty)
        # None: the model chooses (from its weights or other settings), so any value is its own
        if default is inspect.Parameter.empty or default is None:
            continue
        if json.dumps(value) != json.dumps(default) and value != default:
            parts.append(f"{key}={setting_text(value)} (default {setting_text(default)})")
    lines = [f"Model settings (--model-option): {', '.join(parts)}."] if parts else []
    source = embedder.checkpoint
    if source is not None:
        try:
            default_source = spec.default_source() if spec.default_source else None
        except Exception:  # a broken check must not break the summary
            default_source = None
        if os.fspath(source) != default_source:
            lines.append(f"Model weights: {source} (not {spec.name}'s default ones).")
    return lines


def describe(scanner: Scanner, root: str | os.PathLike[str] | None = None) -> str:
    """The training summary as text (what ``audio-embed train`` prints): recordings and
    windows per class, the model's settings and weights that are not its defaults,
    classifier, calibration, augmentation, post-processing and the
    threshold with how it was chosen. File names are relative to ``root`` when given."""
    s = scanner.training_summary or {}
    tw, sw = scanner.train_windows, scanner.scan_windows
    lines: list[str] = []
    lines.append(
        f"Trained a {scanner.embedder.name} scanner on {len(s.get('files', []))} recording(s): "
        f"window {sw.window:g} s, hop {sw.hop:g} s, labelling {tw.labelling} "
        f"(tolerance {tw.tolerance:g} s, negative margin {tw.neg_margin:g} s), "
        f"normalisation {scanner.normalization}."
    )
    if scanner.audio_stream is not None:
        which = (
            "all audio streams mixed"
            if scanner.audio_stream == "mix"
            else (f"audio stream {scanner.audio_stream}")
        )
        lines.append(f"Decoded {which} of each file; scans decode the same (--audio-stream).")
    lines += _model_settings(scanner)
    files = s.get("files", [])
    names = [relative_name(str(f["source"]), root) for f in files]
    width = max((len(n) for n in names), default=0)
    for name, f in zip(names, files, strict=True):
        reviewed = "  (reviewed: only its marked moments)" if f.get("complete") is False else ""
        lines.append(
            f"  {name.ljust(width)}  {f['positive']:5d} positive  {f['negative']:5d} negative"
            + reviewed
        )
    target = s.get("label") or "target"
    lines.append(
        f"Windows per class: {s.get('windows_positive', 0)} positive ({target}), "
        f"{s.get('windows_negative', 0)} negative."
    )
    used_neg, avail = s.get("classifier_n_negative"), s.get("classifier_n_negative_available")
    if used_neg is not None and avail is not None and used_neg != avail:
        lines.append(f"  the classifier used {used_neg} of the {avail} negatives (subsampled).")
    lines.append(
        f"Classifier: {scanner.classifier.summary_['estimator']}; "
        f"calibration: {s.get('classifier_calibration_note', 'n/a')}."
    )
    au = s.get("augmentation")
    if au and au.get("ran", True):  # summaries before "ran" only exist when it ran
        draws = (au.get("settings") or {}).get("draws", 1)
        averaged = f" in {draws} draws (one classifier each, averaged)" if draws > 1 else ""
        lines.append(
            f"Augmentation ({au.get('reason', 'given')}): {au['mixed_sounds']} marked sound(s) "
            f"mixed into new places{averaged}, {au['windows_added']} positive windows added "
            "(the estimator was chosen by the marked windows)."
        )
    elif au:
        lines.append(f"Augmentation: none ({au['reason']}).")
    ad = s.get("adaptation")
    if ad:
        lines.append(
            f"Self-training on {ad['recordings']} unmarked recording(s): pseudo-labels from "
            f"{ad['pseudo_positive_markers']} detection(s) (the best {ad['top']} of each; "
            f"{ad['pseudo_positive_windows']} positive windows) and "
            f"{ad['pseudo_negative_windows']} negative windows."
        )
    lines += _postprocessing(scanner)
    th = s.get("threshold") or {}
    if th.get("cv_f1") is not None:
        held = th.get("held_out")  # summaries before it have none
        counts = (
            f": {held_out_counts((held['found'], held['markers'], held['unmatched']))}"
            if held
            else ""
        )
        lines.append(
            f"Detection threshold: {format_threshold(scanner.scan_threshold)}, chosen by "
            f"cross-validation ({th['method']}, {th['folds']} folds; event F1 "
            f"{th['cv_f1']:.3f} on held-out markers{counts})."
        )
        if th.get("rule"):
            lines.append(f"  Picked by: {th['rule']}.")
        if th.get("draws"):
            lines.append(
                f"  The draws' thresholds: {', '.join(map(format_threshold, th['draws']))}."
            )
    else:
        note = f" ({th['note']})" if th.get("note") else ""
        lines.append(f"Detection threshold: {format_threshold(scanner.scan_threshold)}{note}.")
    return "\n".join(lines)
