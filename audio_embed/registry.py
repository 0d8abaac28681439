"""A registry of named embedder constructors, in the manner of timm's.

Every built-in model has a frozen :class:`EmbedderSpec` (dimension, layers,
sample rate, checkpoint source, licence). Names follow one grammar: a base name
(``HUBERT_BASE``) and, for every layered model, a multi-layer variant with the
``_ML`` suffix (``HUBERT_BASE_ML``) that concatenates the mean-pooled outputs
of the blocks at the quartiles. The variants are derived, never registered by
hand, so they can never disagree with their base.

Where specs come from: each model module declares its specs beside its class
(``register_embedder(EmbedderSpec(...))`` at import, the way timm keeps
``@register_model`` next to each model). This module is a leaf: it imports no
embedder. It loads spec sources by module name on first lookup, as plug-ins:
the built-in package ``audio_embed.embedders`` (which imports every model
module in it), the modules named by :func:`load_plugin` (``--plugin MODULE``
on the command line) and the ``audio_embed.embedders`` entry-point group of
installed packages (each entry point names an :class:`EmbedderSpec`, a
callable returning one or an iterable of them, or a module that registers its
own).

The spec contract: ``factory(**settings)`` builds the embedder; every factory
accepts ``device=`` and, unless ``takes_checkpoint`` is False, ``checkpoint=``
(None = the default weights). Nothing probes a constructor to find out.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import field, frozen

from audio_embed.errors import (
    AudioEmbedError,
    CheckpointError,
    InvalidInputError,
    UnknownEmbedderError,
)

if TYPE_CHECKING:  # types only: the registry imports no embedder at run time
    from audio_embed.embedders.base import Embedder

#: Builds an ``_ML`` embedder from a base embedder and 1-based blocks (set by
#: :mod:`audio_embed.embedders.multilayer`, see :func:`register_layer_selector`).
LayerSelector = Callable[["Embedder", Sequence[int] | str | int], "Embedder"]

__all__ = [
    "BUILTIN_MODULE",
    "ENTRY_POINT_GROUP",
    "ML_SUFFIX",
    "EmbedderSpec",
    "create_embedder",
    "declare_settings",
    "embed_dim",
    "embedder_from_config",
    "get_spec",
    "list_embedders",
    "load_plugin",
    "quartile_layers",
    "register_embedder",
    "register_layer_selector",
    "setting_defaults",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "audio_embed.embedders"
#: The package of built-in models, loaded like a plug-in on first lookup.
BUILTIN_MODULE = "audio_embed.embedders"
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
        takes_checkpoint: the factory accepts ``checkpoint=`` (False for
            weight-free models). Every factory accepts ``device=``.
        saved_defaults: settings that a saved config without them was made
            with: a setting added later whose default is not the old
            behaviour (BirdNET's ``frames="chunk"``), so scanners saved before
            it rebuild the embedder they were trained with.
        default_source: for a model that records its default weights as its
            :attr:`~audio_embed.Embedder.checkpoint` (BirdNET's bundled file,
            Whisper's Hub id), where they are on this machine; None when a
            default build records none (:meth:`Scanner.describe` names other
            weights).

    The settings a model takes (``--model-option`` keys) and their defaults are
    the keyword parameters of ``factory`` (:func:`setting_defaults`); a factory
    that passes ``**kwargs`` on declares them with :func:`declare_settings`.
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
    takes_checkpoint: bool = True
    saved_defaults: Mapping[str, Any] = field(factory=dict, eq=False)
    default_source: Callable[[], str | None] | None = field(default=None, eq=False)

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
_LOCK = threading.RLock()
_LOADED: set[str] = set()
_LOADED_ENTRY_POINTS = False
_LAYER_SELECTOR: list[LayerSelector] = []


def register_embedder(spec: EmbedderSpec, *, overwrite: bool = False) -> EmbedderSpec:
    """Add ``spec`` to the registry and return it.

    Call it at import time of the module that defines the embedder class.

    Raises:
        AudioEmbedError: a different spec of that name exists and ``overwrite``
            is False, or the name ends in ``_ML`` (multi-layer variants are derived).
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


def register_layer_selector(selector: LayerSelector) -> None:
    """Set how ``_ML`` variants are built: ``selector(base_embedder, layers)``.

    :mod:`audio_embed.embedders.multilayer` registers
    :class:`~audio_embed.MultiLayerEmbedder` when it is imported.
    """
    with _LOCK:
        _LAYER_SELECTOR[:] = [selector]


def load_plugin(module: str) -> ModuleType:
    """Import ``module`` (once) so that the specs it registers become known.

    How the command line's ``--plugin MODULE`` reaches a model registered in
    the user's own module. ``module`` is a module name (installed, or its
    folder on the Python path) or the path of a ``.py`` file
    (``./my_models.py``): the file's folder is then put first on ``sys.path``
    and the file imported by its name (``my_models``), the name a scanner
    saved with its models records. A module that fails to import raises
    :class:`~audio_embed.errors.AudioEmbedError` naming it.
    """
    name = module
    if module.endswith(".py") or "/" in module or os.sep in module:
        path = os.path.abspath(os.path.expanduser(module))
        if not module.endswith(".py") or not os.path.isfile(path):
            raise AudioEmbedError(
                f"The plug-in {module!r} is not a Python file: pass the path of a .py file "
                "(./my_models.py) or a module name (my_models)."
            )
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = os.path.basename(path)[: -len(".py")]
    try:
        loaded = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        hint = ""
        if exc.name is not None and name.split(".")[0] == exc.name.split(".")[0]:
            hint = (
                ". A plug-in must be importable: install it, put its folder on PYTHONPATH, or "
                "pass the file's path (--plugin ./my_models.py, load_plugin('./my_models.py')); "
                "the audio-embed command does not look in the current folder"
            )
        raise AudioEmbedError(
            f"Could not import the plug-in module {module!r}: {exc}{hint}"
        ) from exc
    except (ImportError, TypeError, ValueError) as exc:  # TypeError/ValueError: a bad name
        raise AudioEmbedError(f"Could not import the plug-in module {module!r}: {exc}") from exc
    if name != module:
        where = os.path.abspath(str(getattr(loaded, "__file__", "") or ""))
        if where != os.path.abspath(os.path.expanduser(module)):
            raise AudioEmbedError(
                f"The plug-in {module!r} cannot be imported as {name!r}: a module of that name "
                f"is already loaded from {where or 'elsewhere'}. Rename the file."
            )
    with _LOCK:
        _LOADED.add(module)
    return loaded


def _register_entry_point(obj: Any) -> None:
    if isinstance(obj, ModuleType):
        return  # a module registers its own specs when imported
    specs: Any = obj() if callable(obj) and not isinstance(obj, EmbedderSpec) else obj
    if isinstance(specs, EmbedderSpec):
        specs = [specs]
    for spec in specs or ():
        register_embedder(spec, overwrite=True)


def _ensure_loaded() -> None:
    global _LOADED_ENTRY_POINTS
    if BUILTIN_MODULE not in _LOADED:
        load_plugin(BUILTIN_MODULE)
    if not _LOADED_ENTRY_POINTS:
        _LOADED_ENTRY_POINTS = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                _register_entry_point(ep.load())
            except Exception as exc:  # a broken plug-in must not break the library
                log.warning("Embedder entry point %r could not be loaded: %s", ep.name, exc)


def _ml_spec(base: EmbedderSpec) -> EmbedderSpec:
    layers = quartile_layers(int(base.num_layers or 0))

    def factory(*, layers: Sequence[int] | str | int = layers, **kwargs: Any) -> Embedder:
        if not _LAYER_SELECTOR:
            raise AudioEmbedError(
                "No layer selector is registered; import audio_embed.embedders first."
            )
        return _LAYER_SELECTOR[0](base.factory(**kwargs), layers)

    try:  # the base's settings and layers= (a base taking **kwargs: any, as before)
        base_params = inspect.signature(base.factory).parameters.values()
    except (TypeError, ValueError):
        base_params = inspect.signature(factory).parameters.values()
    params = [inspect.signature(factory).parameters["layers"]]
    params += [
        p.replace(kind=p.KEYWORD_ONLY) if p.kind is not p.VAR_KEYWORD else p
        for p in base_params
        if p.name != "layers" and p.kind is not p.VAR_POSITIONAL
    ]
    _set_signature(factory, params)

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
        takes_checkpoint=base.takes_checkpoint,
        saved_defaults=base.saved_defaults,
        default_source=base.default_source,
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
        f"Unknown embedder {name!r}.{hint} Known embedders: {', '.join(sorted(specs))}. "
        "A model of your own is known once its module is imported (load_plugin, "
        "--plugin MODULE)."
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


#: Factory keywords that are not settings: where the weights come from, where the
#: model runs, objects passed in instead of loaded.
NOT_SETTINGS = ("checkpoint", "device", "model", "feature_extractor")


_Factory = TypeVar("_Factory", bound=Callable[..., Any])


def _set_signature(factory: _Factory, params: Iterable[inspect.Parameter]) -> _Factory:
    factory.__signature__ = inspect.Signature(list(params))  # type: ignore[attr-defined]
    return factory


def declare_settings(
    factory: _Factory, target: Callable[..., Any], *, drop: Iterable[str] = (), **defaults: Any
) -> _Factory:
    """``factory``, which passes its ``**kwargs`` on to ``target`` (a class or
    function), declared to take ``target``'s keyword parameters, less those in
    ``drop`` (which the factory sets itself), with the defaults in ``defaults``
    where the factory chooses others. The registry then checks settings against
    them and :func:`setting_defaults` (``audio-embed models --settings``) lists them."""
    dropped = set(drop)
    return _set_signature(
        factory,
        (
            p.replace(kind=p.KEYWORD_ONLY, default=defaults.get(p.name, p.default))
            for p in inspect.signature(target).parameters.values()
            if p.name not in dropped and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ),
    )


def setting_defaults(name: str) -> dict[str, Any] | None:
    """The settings ``create_embedder(name, KEY=VALUE)`` (``--model-option KEY=VALUE``)
    takes, each with its default: the factory's keyword parameters, less
    :data:`NOT_SETTINGS`. A default of None means the model chooses (from the weights
    or its other settings); ``inspect.Parameter.empty``, that it has none. None when
    the factory does not say (it takes ``**kwargs`` and declares no signature).

    >>> setting_defaults("LOGMEL")["n_mels"]
    64
    """
    spec = get_spec(name)
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {
        n: p.default
        for n, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in NOT_SETTINGS
    }


def setting_text(value: Any) -> str:
    """A setting's value as ``--model-option KEY=VALUE`` reads it back (VALUE is read as
    JSON, else as text): numbers in their shortest exact form (``8000``, ``1e-10``), text
    as is, anything else compact JSON (``[3,6,9,12]``, ``true``).

    >>> setting_text(8000.0), setting_text(1e-4), setting_text((3, 6)), setting_text(True)
    ('8000', '0.0001', '[3,6]', 'true')
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, str | float) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))


class _UnknownSetting(InvalidInputError):
    """A keyword the factory does not take (:func:`embedder_from_config` names the rule)."""


def embedder_settings(name: str) -> list[str] | None:
    """The settings ``create_embedder(name, KEY=VALUE)`` takes (the keys of
    :func:`setting_defaults`), read from the factory's signature without building
    anything; None when it cannot say (a factory of ``**kwargs``, or without a signature)."""
    defaults = setting_defaults(name)
    return None if defaults is None else list(defaults)


def _check_settings(spec: EmbedderSpec, settings: Mapping[str, Any]) -> None:
    """An InvalidInputError naming the settings the factory takes, for one it does not
    (before, a TypeError from deep in the factory); factories taking ``**kwargs`` pass."""
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):  # no signature to read: the factory decides
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    keywords = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(settings) - set(keywords))
    takes = [n for n in keywords if n not in NOT_SETTINGS]  # objects passed in are no settings
    if unknown:
        raise _UnknownSetting(
            f"The {spec.name} embedder has no setting {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(takes) or 'none'}."
        )


def create_embedder(
    name: str,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: Any = None,
    **settings: Any,
) -> Embedder:
    """Build the embedder registered as ``name``; ``settings`` go to its factory.

    Pretrained models load their official weights (downloading them on a
    connected machine), or ``checkpoint`` (a local path, Hub id or URL)
    offline. ``_ML`` names also take ``layers=`` (default: the quartiles).

    Raises:
        UnknownEmbedderError: no such name.
        InvalidInputError: a ``checkpoint`` for a weight-free model.
    """
    spec = get_spec(name)
    kwargs = dict(settings)
    _check_settings(spec, kwargs)
    if checkpoint is not None:
        if not spec.takes_checkpoint:
            raise InvalidInputError(
                f"The {spec.name} embedder has no weights to load; it takes no checkpoint. "
                f"Got checkpoint={os.fspath(checkpoint)!r}."
            )
        kwargs["checkpoint"] = checkpoint
    if device is not None:
        kwargs["device"] = device
    try:
        embedder = spec.factory(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) and "unexpected keyword argument" in str(exc):
            # a factory of **kwargs passed on a setting its class lacks
            raise _UnknownSetting(f"The {spec.name} embedder: {exc}") from exc
        if not settings:
            raise
        # a value of the wrong type (--model-option n_mels=abc), named with the settings
        raise InvalidInputError(
            f"The {spec.name} embedder could not be built with {dict(settings)!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    # another checkpoint of the family, custom layers or other settings (BirdNET's
    # frames) may have another size
    default = checkpoint is None and not settings
    if embedder.dim != spec.dim and default:
        raise AudioEmbedError(
            f"Embedder {spec.name!r} was registered with dim {spec.dim} but its model "
            f"produces {embedder.dim}; fix the spec or the checkpoint."
        )
    if default and (embedder.num_layers or None) != (spec.num_layers or None):
        raise AudioEmbedError(
            f"Embedder {spec.name!r} was registered with num_layers={spec.num_layers} but "
            f"its model has {embedder.num_layers}; fix the spec (None for a model without "
            "blocks to pick, e.g. a chunk model with frames)."
        )
    if embedder.name != spec.name:  # config() names it so: a saved scanner rebuilds by it
        try:
            embedder.name = spec.name
        except AttributeError as exc:  # a read-only name property
            raise AudioEmbedError(
                f"Embedder {spec.name!r}'s factory built {type(embedder).__name__} named "
                f"{embedder.name!r}; its name must be the registry name, which saved "
                "scanners rebuild it by."
            ) from exc
    return embedder


def embedder_from_config(
    config: Mapping[str, Any], *, where: str | None = None, **overrides: Any
) -> Embedder:
    """Rebuild the embedder an :meth:`~audio_embed.Embedder.config` describes.

    The registry name, its settings, the layer selection, the weight source
    (passed as ``checkpoint`` unless ``overrides`` name one) and the
    shared-encoding chunk and context. A setting the config lacks takes the
    spec's :attr:`~EmbedderSpec.saved_defaults` value (the behaviour before
    it existed), else the factory's default. ``overrides`` go to the factory too
    (``device=``, a local ``checkpoint=`` for an offline machine). Whether the
    weights are the same is for the caller to check (the fingerprint). ``where``
    (the saved file) starts the message of the :class:`UnknownEmbedderError`
    raised when the name is not registered here (a plugin's model, not loaded).
    """
    try:
        name = str(config["name"])
        kwargs: dict[str, Any] = with_saved_defaults(config)["settings"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"Not an embedder config: {dict(config)!r}") from exc
    if config.get("layers") is not None:
        kwargs["layers"] = [int(k) for k in config["layers"]]
    if name.strip().upper() not in _all_specs():
        why = _unregistered(name, str(config.get("class") or ""))
        raise UnknownEmbedderError(f"{where or 'Cannot rebuild the embedder'}: {why}")
    source = (config.get("weights") or {}).get("source")
    kwargs.update(overrides)
    gone = source is not None and os.path.isabs(str(source)) and not os.path.exists(str(source))
    if source is not None and "checkpoint" not in kwargs and "model" not in kwargs:
        # a local weights file of another machine or environment (a venv's bundled
        # BirdNET): the model's default weights instead, whose fingerprint the caller
        # checks against the saved one
        if not gone:
            kwargs["checkpoint"] = source
    try:
        embedder = create_embedder(name, **kwargs)
    except CheckpointError as exc:
        if not gone or "checkpoint" in kwargs:
            raise
        raise CheckpointError(
            f"{where or 'Cannot rebuild the embedder'}: its weights were {source}, which is "
            f"not here, and {name}'s default weights are not either ({exc}); give the file "
            "(--checkpoint PATH, checkpoint=PATH)."
        ) from exc
    except _UnknownSetting as exc:  # a settings() key the factory does not take
        raise AudioEmbedError(
            f"{where or 'Cannot rebuild the embedder'}: {name} could not be rebuilt with "
            f"{kwargs!r} ({exc}). The keys of its settings() go back "
            "to its registered factory, so each must be one of the factory's keyword "
            "arguments."
        ) from exc
    shared = config.get("shared")
    if shared:
        embedder.shared_chunk = float(shared["chunk"])
        embedder.shared_context = float(shared["context"])
    return embedder


def _unregistered(name: str, cls: str) -> str:
    """Why a saved embedder cannot be rebuilt here: its name is not registered."""
    module = cls.rpartition(".")[0]
    if module.split(".")[0] == "__main__":  # defined in the script that trained it
        how = (
            f"Its class, {cls}, was defined in the script that saved it, which nothing "
            "else can import: load it from a script that defines and registers that class "
            "too, or move the class and its register_embedder(...) to a module of their "
            "own (my_models.py), train again and load the module first "
            "(load_plugin('my_models'), --plugin my_models)."
        )
    elif module and not module.startswith("audio_embed."):
        how = (
            f"Its class is {cls}: load the module that registers it first "
            f"(audio_embed.registry.load_plugin({module!r}), or import it; on the "
            f"command line --plugin {module})."
        )
    else:
        how = "Register it (import the module that does, or --plugin MODULE) first."
    return f"the embedder {name!r} it was saved with is not registered here. {how}"


def with_saved_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the settings it lacks that its spec's
    :attr:`~EmbedderSpec.saved_defaults` name (unchanged for an unknown name)."""
    out = dict(config)
    spec = _all_specs().get(str(config.get("name", "")).upper())
    settings = dict(out.get("settings") or {})
    for key, value in (spec.saved_defaults if spec is not None else {}).items():
        settings.setdefault(key, value)
    out["settings"] = settings
    return out


def specs(pattern: str | None = None) -> Iterable[EmbedderSpec]:
    """The specs matching ``pattern``, in name order."""
    every = _all_specs()
    return [every[n] for n in list_embedders(pattern)]
