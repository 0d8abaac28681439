"""A registry of named embedder constructors, in the manner of timm's.

Every built-in model has a frozen :class:`EmbedderSpec` (dimension, layers,
sample rate, checkpoint source, licence). Names follow one grammar: a base name
(``HUBERT_BASE``) and, for every layered model, a multi-layer variant with the
``_ML`` suffix (``HUBERT_BASE_ML``) that concatenates the mean-pooled outputs
of the blocks at the quartiles. The variants are derived, never registered by
hand, so they can never disagree with their base.

Third-party packages register models through the ``audio_embed.embedders``
entry-point group: each entry point names an :class:`EmbedderSpec`, or a
callable returning one or an iterable of them.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from attrs import field, frozen

from audio_embed.embedders.base import Embedder
from audio_embed.errors import AudioEmbedError, UnknownEmbedderError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ML_SUFFIX",
    "EmbedderSpec",
    "create_embedder",
    "embed_dim",
    "get_spec",
    "list_embedders",
    "quartile_layers",
    "register_embedder",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "audio_embed.embedders"
ML_SUFFIX = "_ML"


def quartile_layers(num_layers: int) -> tuple[int, ...]:
    """Blocks at the quartiles of ``num_layers`` blocks, 1-based: n/4, n/2, 3n/4, n.

    >>> quartile_layers(12)
    (3, 6, 9, 12)
    >>> quartile_layers(48)
    (12, 24, 36, 48)
    """
    if num_layers < 4:
        raise AudioEmbedError(
            f"Quartile layers need at least 4 blocks. Got a model with {num_layers}; "
            "pass an explicit list of layers instead."
        )
    n = num_layers
    return (n // 4, n // 2, 3 * n // 4, n)


def _upper(name: str) -> str:
    return str(name).strip().upper()


@frozen(kw_only=True)
class EmbedderSpec:
    """What the registry knows about one named embedder, without building it.

    Attributes:
        name: registry name, upper case (``"HUBERT_BASE"``).
        factory: called with the keyword arguments given to
            :func:`create_embedder`; returns an :class:`Embedder`.
        dim: length of the embedding vectors.
        num_layers: transformer blocks, or None for models without layers.
            Layered specs get an ``_ML`` variant automatically.
        sample_rate: input sample rate in Hz.
        source: where the official weights come from (bundle, Hub id, URL).
        license: licence of those weights.
        description: one line for ``audio-embed models``.
        weights_available: optional check that the weights are on this
            machine now (in a cache or at a local path), without downloading.
        layers: for a multi-layer variant, the 1-based blocks it concatenates.
    """

    name: str = field(converter=_upper)
    factory: Callable[..., Embedder]
    dim: int
    num_layers: int | None = None
    sample_rate: int = 16000
    source: str = ""
    license: str = ""
    description: str = ""
    weights_available: Callable[[], bool] | None = field(default=None, eq=False)
    layers: tuple[int, ...] | None = None

    @property
    def layered(self) -> bool:
        return bool(self.num_layers)

    def available(self) -> bool:
        """True when the weights need no download (always for weight-free models)."""
        if self.weights_available is None:
            return True
        try:
            return bool(self.weights_available())
        except Exception:  # a broken check must not break a listing
            return False


_REGISTRY: dict[str, EmbedderSpec] = {}
_LOCK = threading.Lock()
_LOADED_BUILTINS = False
_LOADED_ENTRY_POINTS = False


def register_embedder(spec: EmbedderSpec, *, overwrite: bool = False) -> EmbedderSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        AudioEmbedError: a spec of that name exists and ``overwrite`` is False,
            or the name ends in ``_ML`` (multi-layer variants are derived).
    """
    if spec.name.endswith(ML_SUFFIX):
        raise AudioEmbedError(
            f"Names ending in {ML_SUFFIX!r} are derived from their layered base model; "
            f"register {spec.name[: -len(ML_SUFFIX)]!r} with num_layers set instead."
        )
    if spec.dim <= 0:
        raise AudioEmbedError(
            f"The 'dim' of EmbedderSpec {spec.name!r} must be > 0. Got {spec.dim}."
        )
    with _LOCK:
        if spec.name in _REGISTRY and not overwrite and _REGISTRY[spec.name] != spec:
            raise AudioEmbedError(
                f"An embedder named {spec.name!r} is already registered; pass overwrite=True "
                "to replace it."
            )
        _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _LOADED_BUILTINS, _LOADED_ENTRY_POINTS
    if not _LOADED_BUILTINS:
        _LOADED_BUILTINS = True
        from audio_embed.embedders import register_builtins

        register_builtins()
    if not _LOADED_ENTRY_POINTS:
        _LOADED_ENTRY_POINTS = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                specs: Any = obj() if callable(obj) and not isinstance(obj, EmbedderSpec) else obj
                if isinstance(specs, EmbedderSpec):
                    specs = [specs]
                for spec in specs:
                    register_embedder(spec, overwrite=True)
            except Exception as exc:  # a broken plug-in must not break the library
                log.warning("Embedder entry point %r could not be loaded: %s", ep.name, exc)


def _ml_spec(base: EmbedderSpec) -> EmbedderSpec:
    from audio_embed.embedders.multilayer import MultiLayerEmbedder

    layers = quartile_layers(int(base.num_layers or 0))

    def factory(**kwargs: Any) -> Embedder:
        return MultiLayerEmbedder(base.factory(**kwargs), layers=layers)

    return EmbedderSpec(
        name=base.name + ML_SUFFIX,
        factory=factory,
        dim=base.dim * len(layers),
        num_layers=None,
        sample_rate=base.sample_rate,
        source=base.source,
        license=base.license,
        description=f"{base.name}, mean-pooled blocks {', '.join(map(str, layers))} concatenated",
        weights_available=base.weights_available,
        layers=layers,
    )


def _all_specs() -> dict[str, EmbedderSpec]:
    _ensure_loaded()
    with _LOCK:
        specs = dict(_REGISTRY)
    for spec in list(specs.values()):
        if spec.layered and (spec.num_layers or 0) >= 4:
            specs[spec.name + ML_SUFFIX] = _ml_spec(spec)
    return specs


def get_spec(name: str) -> EmbedderSpec:
    """The :class:`EmbedderSpec` of ``name`` (case-insensitive).

    Raises:
        UnknownEmbedderError: no such name; the message lists close matches
            and every known name.
    """
    specs = _all_specs()
    key = str(name).strip().upper()
    if key in specs:
        return specs[key]
    close = difflib.get_close_matches(key, specs, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownEmbedderError(
        f"Unknown embedder {name!r}.{hint} Known embedders: {', '.join(sorted(specs))}."
    )


def list_embedders(pattern: str | None = None) -> list[str]:
    """Sorted names of registered embedders, filtered by a shell-style ``pattern``.

    >>> "HUBERT_BASE_ML" in list_embedders("HUBERT*")
    True
    """
    names = sorted(_all_specs())
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern.upper())]
    return names


def embed_dim(name: str) -> int:
    """Embedding length of ``name`` without building the model."""
    return get_spec(name).dim


def create_embedder(name: str, **kwargs: Any) -> Embedder:
    """Build the embedder registered as ``name``; ``kwargs`` go to its factory.

    Pretrained models load their official weights (downloading them on a
    connected machine), or from ``checkpoint=<local path>`` offline.
    """
    spec = get_spec(name)
    embedder = spec.factory(**kwargs)
    if embedder.dim != spec.dim:
        raise AudioEmbedError(
            f"Embedder {spec.name!r} was registered with dim {spec.dim} but its model "
            f"produces {embedder.dim}; fix the spec or the checkpoint."
        )
    return embedder


def specs(pattern: str | None = None) -> Iterable[EmbedderSpec]:
    """The specs matching ``pattern``, in name order."""
    every = _all_specs()
    return [every[n] for n in list_embedders(pattern)]
