"""Saved scanners: one zip of JSON metadata and a skops classifier, never a pickle.

:meth:`Scanner.save <audio_embed.scanner.Scanner.save>`,
:meth:`~audio_embed.scanner.Scanner.load` and
:meth:`~audio_embed.scanner.Scanner.read_metadata` delegate here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from audio_embed._io import atomic_writer, check_output_file
from audio_embed.audio import saved_audio_stream
from audio_embed.augment import MixAugmentation
from audio_embed.cache import EmbeddingCache
from audio_embed.classifier import CalibratedClassifier
from audio_embed.detect import Postprocessing
from audio_embed.embedders.base import Embedder, config_differences
from audio_embed.errors import InvalidInputError, ScannerFileError
from audio_embed.scanner.augmented import AugmentationSetting, augmentation_settings
from audio_embed.windows import SlidingWindows, TargetedWindows

if TYPE_CHECKING:
    from audio_embed.scanner.core import Scanner

_S = TypeVar("_S", bound="Scanner")

__all__ = [
    "MAX_SCANNER_BYTES",
    "SCANNER_FORMAT",
    "SCANNER_FORMAT_VERSION",
    "TRUSTED_MODULE_PREFIXES",
    "load",
    "metadata",
    "read_metadata",
    "save",
]

log = logging.getLogger(__name__)

SCANNER_FORMAT = "audio_embed.scanner"
#: 2: ``embedder.cache_id`` fingerprints the weights. 3: the embedder's
#: :meth:`~audio_embed.Embedder.config` is stored; load rebuilds the embedder from it
#: and refuses a mismatch. 4: the scanner decodes another audio stream than the first
#: (``audio_stream``); written only then, so that a release before it, which would
#: decode the first stream, refuses the file instead (other files stay 3). 1 to 3 are
#: still read.
SCANNER_FORMAT_VERSION = 4
_FIRST_STREAM_FORMAT_VERSION = 3
#: Only these modules may appear in a saved classifier (checked before loading).
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "audio_embed.classifier.")
#: The types skops does not trust by default that this library's classifiers hold (every
#: kind of :class:`CalibratedClassifier`; all within :data:`TRUSTED_MODULE_PREFIXES`): a
#: file holding no others is audited and loaded in one pass of skops instead of two.
OWN_CLASSIFIER_TYPES = (
    "audio_embed.classifier.CalibratedClassifier",
    "audio_embed.classifier.PrototypeClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
MAX_SCANNER_BYTES = 512 * 1024 * 1024


def metadata(scanner: Scanner) -> dict[str, Any]:
    """The JSON part of ``scanner``'s saved file."""
    from audio_embed import __version__

    return {
        "format": SCANNER_FORMAT,
        "format_version": SCANNER_FORMAT_VERSION
        if scanner.audio_stream not in (None, 0)
        else _FIRST_STREAM_FORMAT_VERSION,
        "library_version": __version__,
        "embedder": {
            "name": scanner.embedder.name,
            "dim": scanner.embedder.dim,
            "cache_id": scanner.embedder.cache_id(),
            "config": scanner.embedder.config(),
        },
        "feature_dim": scanner.embedder.dim,
        # whose window_features() made the classifier's features (a Scanner subclass's own)
        "window_features": _features_of(type(scanner)),
        "scan_windows": {
            "window": scanner.scan_windows.window,
            "hop": scanner.scan_windows.hop,
            "encoding": scanner.scan_windows.encoding,
        },
        "train_windows": {
            "window": scanner.train_windows.window,
            "tolerance": scanner.train_windows.tolerance,
            "neg_margin": scanner.train_windows.neg_margin,
            "neg_stride": scanner.train_windows.neg_stride,
            "labelling": scanner.train_windows.labelling,
            "hop": scanner.train_windows.hop,
        },
        # a TargetedWindows subclass of the user's (None: TargetedWindows itself)
        "train_windows_class": None
        if type(scanner.train_windows) is TargetedWindows
        else _class_name(type(scanner.train_windows)),
        "normalization": scanner.normalization,
        "threshold": scanner.scan_threshold,
        "threshold_setting": scanner.threshold,
        "context": scanner.context,
        # what scans use (files read by releases before the setting scan the same) ...
        "postprocessing": scanner.scan_postprocessing.as_dict(),
        # ... and the setting it was derived from (fit: from selections, or estimated from points)
        "postprocessing_setting": scanner.postprocessing.as_dict(),
        "postprocessing_from_spans": scanner.postprocessing_from_spans,
        "postprocessing_from_points": scanner.postprocessing_from_points,
        # a Postprocessing subclass of the user's, by import path (None: Postprocessing)
        "postprocessing_class": _own_class(type(scanner.scan_postprocessing)),
        "postprocessing_setting_class": _own_class(type(scanner.postprocessing)),
        "seed": scanner.seed,
        "batch_size": scanner.batch_size,
        "augmentation": _augmentation_setting(scanner.augmentation),
        # the audio stream of a file it decodes (None: the first); files from before have none
        "audio_stream": scanner.audio_stream,
        "training_summary": scanner.training_summary,
    }


def save(scanner: Scanner, path: str | os.PathLike[str]) -> Path:
    """See :meth:`Scanner.save <audio_embed.scanner.Scanner.save>`."""
    import skops.io

    if not scanner.is_fitted:
        raise InvalidInputError("Only a trained scanner can be saved; call fit() first.")
    target = Path(path)
    check_output_file(target, example="my.scanner")  # a folder: name a file in it
    payload = skops.io.dumps(scanner.classifier)
    own = _refused_types(skops.io.get_untrusted_types(data=payload), ())
    if own:
        log.warning(
            "%s holds types that are not scikit-learn or numpy types (%s): load it with "
            "Scanner.load(path, trusted=%r) (command line: %s).",
            target,
            ", ".join(own),
            own,
            " ".join(f"--trust {t}" for t in own),
        )
    with atomic_writer(target) as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("scanner.json", json.dumps(metadata(scanner), indent=2))
            zf.writestr("classifier.skops", payload)
    return target


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """See :meth:`Scanner.read_metadata <audio_embed.scanner.Scanner.read_metadata>`."""
    meta, _ = _read_scanner_file(Path(path))
    return meta


def load(
    cls: type[_S],
    path: str | os.PathLike[str],
    *,
    embedder: Embedder | None,
    cache: EmbeddingCache | None,
    embedder_kwargs: dict[str, Any] | None,
    allow_mismatch: bool,
    trusted: Sequence[str] = (),
) -> _S:
    """See :meth:`Scanner.load <audio_embed.scanner.Scanner.load>`."""
    p = Path(path)
    meta, payload = _read_scanner_file(p)
    cls = _check_features(p, meta, cls, allow_mismatch)
    post_classes = (
        _postprocessing_class(p, meta.get("postprocessing_class")),
        _postprocessing_class(p, meta.get("postprocessing_setting_class")),
    )
    embedder = _saved_embedder(p, meta, embedder, embedder_kwargs or {}, allow_mismatch)
    classifier = _load_classifier(p, payload, trusted)
    try:
        return _build(cls, p, meta, embedder, classifier, cache, post_classes)
    except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError is a ValueError
        from audio_embed import __version__

        detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ScannerFileError(
            f"{p} holds settings this audio_embed ({__version__}) cannot use ({detail}). "
            f"It was written by audio_embed {meta.get('library_version', '(unknown)')}: "
            "if that is newer, upgrade; otherwise the file is damaged, train it again."
        ) from exc


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_T = TypeVar("_T")


def loaded_class(path: str, base: type[_T]) -> type[_T] | None:
    """The class ``path`` (``module.QualName``) when its module is imported here and it
    is ``base`` or a subclass of it, else None (nothing is imported)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the module, then the class's qualified name
        found: Any = sys.modules.get(".".join(parts[:i]))
        for part in parts[i:]:
            found = getattr(found, part, None)
        if isinstance(found, type) and issubclass(found, base):
            return found
    return None


def _own_class(cls: type[Postprocessing]) -> str | None:
    return None if cls is Postprocessing else _class_name(cls)


def _postprocessing_class(p: Path, saved: Any) -> type[Postprocessing]:
    """The Postprocessing subclass a scanner was saved with (None: Postprocessing). It
    turns scores into detections, so a class that is not here refuses the file; nothing
    is imported from a file, the class's module must be imported already."""
    if saved is None:
        return Postprocessing
    found = loaded_class(str(saved), Postprocessing)
    if found is not None:
        return found
    module, parts = str(saved).rpartition(".")[0], str(saved).split(".")
    if parts[0] == "__main__" or "<locals>" in parts:
        how = (
            "it was defined in the script that saved it (or inside a function), which "
            "nothing else can import: move the class to a module of its own "
            "(my_post.py), train again, and import that module before Scanner.load"
        )
    else:
        how = (
            f"import its module first (import {module}, or load_plugin({module!r}); on the "
            f"command line --plugin {module})"
        )
    raise ScannerFileError(
        f"{p} turns scores into detections with {saved}, a Postprocessing subclass that "
        f"is not loaded here (nothing is imported from a scanner file): {how}."
    )


def _train_windows_class(p: Path, saved: Any) -> type[TargetedWindows]:
    """The TargetedWindows subclass a scanner was saved with, when its module is imported
    here (nothing is imported from a file); else TargetedWindows, with a warning."""
    if saved is None:
        return TargetedWindows
    module, _, name = str(saved).rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    if isinstance(found, type) and issubclass(found, TargetedWindows):
        return found
    log.warning(
        "%s was trained with training windows of class %s; its module is not imported, "
        "so they load as TargetedWindows with the same settings. Scans are the same; "
        "to refit it with that class's labelling, import %s before Scanner.load.",
        p,
        saved,
        module or saved,
    )
    return TargetedWindows


def _features_of(cls: type[Scanner]) -> str:
    """The qualified name of the ``window_features`` a scanner class uses."""
    method = cls.window_features
    return f"{method.__module__}.{method.__qualname__}"


def _check_features(p: Path, meta: dict[str, Any], cls: type[_S], allow: bool) -> type[_S]:
    """The class to load a scanner as: ``cls``, or the subclass of it whose
    ``window_features`` made the classifier's features when that subclass's module is
    imported here (nothing is imported from a file). Otherwise refuse to load it as
    ``cls``: its scores would be wrong, or fail."""
    saved = meta.get("window_features")
    here = _features_of(cls)
    if saved is None or saved == here:
        return cls
    owner = str(saved).rsplit(".", 1)[0]
    found = loaded_class(owner, cls)
    if found is not None and _features_of(found) == saved:
        return found
    module, name = owner.rpartition(".")[0], owner.rsplit(".", 1)[-1]
    message = (
        f"{p} was trained with the window features of {owner} (its window_features() "
        f"overrides the scanner's), not {here.rsplit('.', 1)[0]}'s: load it with "
        f"{name}.load(...), or import its module first and Scanner.load loads it as {name}"
        + (
            " (a class of the script that saved it, or of a function, is imported nowhere "
            "else: move it to a module of its own)"
            if module.split(".")[0] == "__main__" or "<locals>" in owner
            else f" (command line: --plugin {module}; Ray: RayOptions(plugins=[{module!r}]))"
        )
    )
    if not allow:
        raise ScannerFileError(f"{message}, or pass allow_mismatch=True to use it anyway.")
    log.warning("%s; loaded anyway (allow_mismatch=True).", message)
    return cls


def _build(
    cls: type[_S],
    p: Path,
    meta: dict[str, Any],
    embedder: Embedder,
    classifier: CalibratedClassifier,
    cache: EmbeddingCache | None,
    post_classes: tuple[type[Postprocessing], type[Postprocessing]],
) -> _S:
    """The scanner of a saved file's metadata (KeyError, TypeError or ValueError when
    the settings are missing, of another type, or unknown to this version)."""
    sw, tw = meta["scan_windows"], meta["train_windows"]
    used_class, setting_class = post_classes
    used = meta.get("postprocessing", {"valley": 0.0})
    setting = meta.get("postprocessing_setting", used)
    scanner = cls(
        embedder=embedder,
        classifier=classifier,
        scan_windows=SlidingWindows(float(sw["window"]), float(sw["hop"]), sw["encoding"]),
        train_windows=_train_windows_class(p, meta.get("train_windows_class"))(**tw),
        normalization=meta["normalization"],
        cache=cache,
        batch_size=None if meta.get("batch_size") is None else int(meta["batch_size"]),
        threshold=meta.get("threshold_setting", float(meta["threshold"])),
        context=float(meta.get("context", 0.0)),
        postprocessing=setting_class(**setting),
        seed=int(meta.get("seed", 0)),
        augmentation=_saved_augmentation(p, meta.get("augmentation")),
        postprocessing_from_spans=bool(meta.get("postprocessing_from_spans", True)),
        postprocessing_from_points=bool(meta.get("postprocessing_from_points", False)),
        audio_stream=saved_audio_stream(meta.get("audio_stream"), p, ScannerFileError),
    )
    scanner.threshold_ = float(meta["threshold"])  # in [0, 1]: _read_scanner_file
    if used != setting or used_class is not setting_class:
        scanner.postprocessing_ = used_class(**used)
    scanner.training_summary = meta.get("training_summary")
    return scanner


def _augmentation_setting(setting: AugmentationSetting) -> str | dict[str, Any] | None:
    if isinstance(setting, MixAugmentation):
        return augmentation_settings(setting)
    return setting  # "auto" or None


def _saved_augmentation(p: Path, saved: Any) -> AugmentationSetting:
    """The saved ``augmentation`` setting: ``"auto"``, None or a MixAugmentation's
    fields (files from before the setting existed have none: None, as they were fitted)."""
    if saved is None:
        return None
    if saved == "auto":
        return "auto"
    try:
        return MixAugmentation(**saved)
    except (TypeError, InvalidInputError) as exc:
        raise ScannerFileError(f"{p}: its 'augmentation' setting is invalid: {exc}") from exc


def _saved_embedder(
    p: Path,
    meta: dict[str, Any],
    embedder: Embedder | None,
    kwargs: dict[str, Any],
    allow_mismatch: bool,
) -> Embedder:
    """The embedder a saved scanner was trained with: given and checked, or rebuilt."""
    from audio_embed.embedders.base import setting_differences
    from audio_embed.registry import create_embedder, embedder_from_config, with_saved_defaults

    want = meta["embedder"]
    saved = want.get("config")
    if saved is not None:  # settings added since it was saved: their old behaviour
        saved = with_saved_defaults(saved)
    if embedder is None:
        if saved is not None:
            embedder = embedder_from_config(saved, where=str(p), **kwargs)
        else:  # formats 1 and 2: by name, as saved before every setting added since
            old = with_saved_defaults({"name": want["name"]})["settings"]
            embedder = create_embedder(str(want["name"]), **{**old, **kwargs})
    if embedder.name != want["name"] or embedder.dim != int(meta["feature_dim"]):
        # one model with other settings (LOGMEL n_mels=32, a scanner, against an index of
        # the default): which ones (before: "LOGMEL (128 features) … LOGMEL (256 features)")
        settings = setting_differences(saved, embedder)
        raise ScannerFileError(
            f"{p} was trained with embedder {want['name']} ({meta['feature_dim']} features); "
            f"it cannot be used with {embedder.name} ({embedder.dim} features)"
            + (f", whose settings differ: {'; '.join(settings)}" if settings else "")
            + f". Scan with the same embedder, or train a new scanner for {embedder.name}."
        )
    if saved is not None:
        # a setting at the value a config without it means (saved_defaults) may be left out
        differences = config_differences(saved, with_saved_defaults(embedder.config()))
    elif int(meta.get("format_version", 1)) >= 2 and want.get("cache_id") != embedder.cache_id():
        differences = [
            f"fingerprint: saved {want.get('cache_id')!r} (format {meta['format_version']}, "
            "computed by an older audio_embed, so it may differ for the same weights)"
        ]
    else:
        differences = []
    if differences:
        message = (
            f"{p} was trained with another configuration or other weights of "
            f"{want['name']}: " + "; ".join(differences) + ". Its scores would be meaningless."
        )
        if not allow_mismatch and saved is not None:
            raise ScannerFileError(
                message + " Load the embedder it was trained with, train it again, or pass "
                "allow_mismatch=True (--allow-mismatch) to use it anyway."
            )
        log.warning("%s", message)
    return embedder


def not_a_scanner(p: Path) -> str | None:
    """Why ``p`` is plainly not a scanner file (a folder, audio or video), else None."""
    from audio_embed._media import is_media_file

    if p.is_dir():
        if any(p.glob("*.scanner")):
            return (
                f"{p} is a folder of scanners, not a scanner file: name one of its .scanner "
                "files, or load it as a store (ScannerStore(folder).load(profile, model); "
                "on the command line --store DIR --profile NAME)"
            )
        return f"{p} is a folder, not a scanner file"
    if p.is_file() and is_media_file(p):
        return (
            f"{p} is an audio or video file, not a scanner file (the .scanner file that "
            "Scanner.save or audio-embed train writes)"
        )
    if p.is_file() and (line := _first_text_line(p)) is not None:
        # before: "not a readable scanner file (truncated or corrupt: File is not a zip
        # file)", of markers.csv given where the scanner goes
        return (
            f"{p} is a text file (it starts {line!r}: markers, labels or results?), not a "
            "scanner file (the .scanner file that Scanner.save or audio-embed train writes)"
        )
    return None


def _first_text_line(p: Path) -> str | None:
    """The first line of ``p`` when its start reads as text (a scanner is a zip file)."""
    try:
        with p.open("rb") as f:
            head = f.read(256)
    except OSError:
        return None
    text = head.decode("utf-8-sig", errors="ignore")  # a character cut at byte 256
    if not text.strip() or any(c < " " and c not in "\t\r\n" for c in text):
        return None
    return text.splitlines()[0][:40]


def _read_scanner_file(p: Path) -> tuple[dict[str, Any], bytes]:
    reason = not_a_scanner(p)
    if reason is not None:
        raise ScannerFileError(reason + ".")
    if not p.is_file():
        raise ScannerFileError(f"Scanner file not found: {p}")
    try:
        with zipfile.ZipFile(p) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if set(infos) != {"scanner.json", "classifier.skops"}:
                raise ScannerFileError(
                    f"{p} is not an audio_embed scanner (unexpected contents: {sorted(infos)})."
                )
            if sum(i.file_size for i in infos.values()) > MAX_SCANNER_BYTES:
                raise ScannerFileError(f"{p} is implausibly large for a scanner; refusing it.")
            meta = json.loads(zf.read("scanner.json"))
            payload = zf.read("classifier.skops")
    except ScannerFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise ScannerFileError(
            f"{p} is not a readable scanner file (truncated or corrupt: {exc})."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != SCANNER_FORMAT:
        raise ScannerFileError(f"{p} is not an audio_embed scanner file.")
    version = meta.get("format_version", -1)
    if not isinstance(version, int):
        raise ScannerFileError(f"{p}: its format_version {version!r} is not a number; damaged.")
    if version > SCANNER_FORMAT_VERSION:
        raise ScannerFileError(
            f"{p} was written by a newer audio_embed ({meta.get('library_version')}); upgrade."
        )
    required = ("embedder", "feature_dim", "scan_windows", "train_windows", "normalization")
    for key in (*required, "threshold"):
        if key not in meta:
            raise ScannerFileError(f"{p} lacks the {key!r} field; the file is damaged.")
    try:
        threshold = float(meta["threshold"])
    except (TypeError, ValueError):
        threshold = math.nan
    if not 0.0 <= threshold <= 1.0:  # NaN too: every scan would fail, far from here
        raise ScannerFileError(
            f"{p} holds a threshold that is not a number in [0, 1] (its threshold "
            f"{meta['threshold']!r}); the file is damaged."
        )
    return meta, payload


def _refused_types(untrusted: Sequence[str], trusted: Sequence[str]) -> list[str]:
    """The types skops does not trust that are neither scikit-learn / numpy nor ``trusted``."""
    return [t for t in untrusted if not t.startswith(TRUSTED_MODULE_PREFIXES) and t not in trusted]


def _load_classifier(p: Path, payload: bytes, trusted: Sequence[str]) -> CalibratedClassifier:
    import skops.io

    try:
        # One pass: skops audits the file against these types before it builds anything
        # (listing the file's types first was a second full parse, 40 % of a load) ...
        obj = skops.io.loads(payload, trusted=[*OWN_CLASSIFIER_TYPES, *trusted])
    except Exception:
        # ... a file with other types (or a damaged one): the passes that say which
        obj = _load_listed(p, payload, trusted)
    if not isinstance(obj, CalibratedClassifier):
        raise ScannerFileError(f"{p}: expected a CalibratedClassifier, found {type(obj).__name__}.")
    return obj


def _load_listed(p: Path, payload: bytes, trusted: Sequence[str]) -> Any:
    """The classifier after listing the file's types: a clear error naming the refused ones."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:
        raise ScannerFileError(f"{p}: the classifier part is damaged ({exc}).") from exc
    refused = _refused_types(untrusted, trusted)
    if refused:
        raise ScannerFileError(
            f"{p} holds types that are not scikit-learn or numpy types ({', '.join(refused)}); "
            "refusing to load it. Nothing from the file was executed. If they are your own "
            "estimator's classes (or a package's you trust) and you trust the file, pass "
            f"trusted={refused!r} to Scanner.load (command line: "
            + " ".join(f"--trust {t}" for t in refused)
            + ")."
        )
    try:
        obj = skops.io.loads(payload, trusted=untrusted)
    except Exception as exc:
        raise ScannerFileError(f"{p}: the classifier could not be loaded ({exc}).") from exc
    return obj
