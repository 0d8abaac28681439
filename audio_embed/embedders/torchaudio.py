"""wav2vec 2.0, HuBERT and WavLM encoders from :mod:`torchaudio.pipelines`.

A torchaudio bundle is data (checkpoint path, architecture parameters, sample
rate); :class:`TorchaudioEmbedder` builds the architecture from it and loads
the official weights: from the bundle (downloaded once into the torch hub
cache on a connected machine) or from a local checkpoint file offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.errors import CheckpointError, UnknownEmbedderError
from audio_embed.registry import EmbedderSpec, declare_settings, register_embedder

__all__ = ["TORCHAUDIO_BUNDLES", "TorchaudioEmbedder", "bundle_cache_path"]

#: Registry name -> (torchaudio.pipelines attribute, dim, blocks, licence).
TORCHAUDIO_BUNDLES: dict[str, tuple[str, int, int, str]] = {
    "WAV2VEC2_BASE": ("WAV2VEC2_BASE", 768, 12, "MIT (fairseq)"),
    "WAV2VEC2_LARGE": ("WAV2VEC2_LARGE", 1024, 24, "MIT (fairseq)"),
    "WAV2VEC2_LARGE_LV60K": ("WAV2VEC2_LARGE_LV60K", 1024, 24, "MIT (fairseq)"),
    "WAV2VEC2_XLSR53": ("WAV2VEC2_XLSR53", 1024, 24, "MIT (fairseq)"),
    "HUBERT_BASE": ("HUBERT_BASE", 768, 12, "MIT (fairseq)"),
    "HUBERT_LARGE": ("HUBERT_LARGE", 1024, 24, "MIT (fairseq)"),
    "HUBERT_XLARGE": ("HUBERT_XLARGE", 1280, 48, "MIT (fairseq)"),
    "WAVLM_BASE": ("WAVLM_BASE", 768, 12, "MIT (microsoft/unilm)"),
    "WAVLM_BASE_PLUS": ("WAVLM_BASE_PLUS", 768, 12, "MIT (microsoft/unilm)"),
    "WAVLM_LARGE": ("WAVLM_LARGE", 1024, 24, "MIT (microsoft/unilm)"),
}


def _bundle(bundle_name: str) -> Any:
    import torchaudio.pipelines

    bundle = getattr(torchaudio.pipelines, bundle_name, None)
    if bundle is None or not hasattr(bundle, "_params"):
        raise UnknownEmbedderError(
            f"torchaudio.pipelines has no wav2vec2-family bundle named {bundle_name!r}. "
            f"Known: {', '.join(sorted(TORCHAUDIO_BUNDLES))}."
        )
    return bundle


def bundle_cache_path(bundle_name: str) -> Path:
    """Where torch hub caches the bundle's checkpoint (it may not exist yet)."""
    bundle = _bundle(bundle_name)
    filename: str = os.path.basename(bundle._path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _build_architecture(bundle: Any) -> torch.nn.Module:
    from torchaudio.models import wav2vec2_model, wavlm_model

    params = dict(bundle._params)
    factory = wavlm_model if getattr(bundle, "_model_type", "") == "WavLM" else wav2vec2_model
    model: torch.nn.Module = factory(**params)
    return model


def _load_checkpoint(bundle: Any, checkpoint: str | os.PathLike[str]) -> torch.nn.Module:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable torch checkpoint ({exc}).") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}.")
    model = _build_architecture(bundle)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit the {bundle._path} architecture: "
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]})."
        )
    return model


class TorchaudioEmbedder(LayeredEmbedder):
    """A wav2vec2-family encoder (wav2vec 2.0, HuBERT, WavLM) from torchaudio.

    Args:
        bundle: name of a :mod:`torchaudio.pipelines` bundle, e.g. ``"HUBERT_BASE"``.
        checkpoint: a local state-dict file to load instead of downloading
            (what ``torch.save(bundle.get_model().state_dict(), path)`` writes,
            or the file in the torch hub cache).
        model: an already built ``torchaudio.models.Wav2Vec2Model`` (tests use
            tiny random-weight ones); overrides ``bundle`` weights.
        device: where to run; CUDA when present by default.
        normalize_waveform: zero-mean unit-variance input per waveform, as the
            bundle was trained with (the LV60K / XLSR / large HuBERT models).
            Defaults to the bundle's own setting.

    The embedding is the mean over time of the encoder output (``model(x)``
    without an ASR head). For the pre-LayerNorm large models that output has
    the final LayerNorm applied, and so do the frames of the last block
    (:meth:`frame_states`); :meth:`hidden_states` returns the raw block outputs.

    Shared-context encoding is supported: frames every 320 samples (20 ms),
    each seeing 400 samples, from the convolutional front end's kernels and
    strides. The front end is not local in per-window mode for any released
    bundle: the base models' first convolution is followed by a GroupNorm over
    time (statistics of the whole input), and the large models normalise each
    waveform (``normalize_waveform``) before it. Shared segments are normalised
    per segment.
    """

    #: The front end's first activations: 512 channels at 3.2 kHz, a few alive at once.
    activation_bytes_per_second = 24 * 1024 * 1024

    def __init__(
        self,
        bundle: str = "HUBERT_BASE",
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        model: torch.nn.Module | None = None,
        device: str | torch.device | None = None,
        normalize_waveform: bool | None = None,
        name: str | None = None,
    ) -> None:
        self.bundle_name = bundle.upper()
        self.name = name or self.bundle_name
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        if model is None:
            spec = _bundle(self.bundle_name)
            if checkpoint is not None:
                model = _load_checkpoint(spec, checkpoint)
            else:
                try:
                    loaded = spec.get_model()
                    # unwrap torchaudio's input-normalising wrapper; we normalise ourselves
                    model = getattr(loaded, "model", loaded)
                except Exception as exc:
                    raise CheckpointError(
                        f"Could not load the {self.bundle_name} weights ({exc}). On a machine "
                        "without network access, pass checkpoint=<path to the .pth file>."
                    ) from exc
            if normalize_waveform is None:
                normalize_waveform = bool(getattr(spec, "_normalize_waveform", False))
            self.sample_rate = int(spec.sample_rate)
        self.normalize_waveform = bool(normalize_waveform)
        arch: Any = model.eval()
        self.model = arch
        self.num_layers = len(arch.encoder.transformer.layers)
        self.dim = int(arch.encoder.transformer.layers[0].final_layer_norm.normalized_shape[0])
        self.to(device or default_device())

    def settings(self) -> dict[str, Any]:
        return {"normalize_waveform": self.normalize_waveform}

    def _normalize(self, waveforms: torch.Tensor) -> torch.Tensor:
        if not self.normalize_waveform:
            return waveforms
        # Per waveform, as fairseq normalises each utterance. (torchaudio's wrapper
        # normalises the whole batch tensor jointly, which makes an embedding depend
        # on its batch neighbours.)
        return torch.nn.functional.layer_norm(waveforms, waveforms.shape[-1:])

    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        states, _ = self.model.extract_features(self._normalize(waveforms), num_layers=num_layers)
        return list(states)

    def frame_geometry(self) -> FrameGeometry:
        """Hop and receptive field of the convolutional front end (320 and 400 samples)."""
        hop, field = 1, 1
        for block in self.model.feature_extractor.conv_layers:
            kernel, stride = int(block.conv.kernel_size[0]), int(block.conv.stride[0])
            field += (kernel - 1) * hop
            hop *= stride
        return FrameGeometry(hop=hop, field=field)

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Transformer outputs of the chosen blocks, one per 20 ms frame; the last
        block's with the final LayerNorm of pre-LN models (the encoder output)."""
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        features = self.front_end(self._normalize(waveforms))
        states = self.model.encoder.extract_features(features, None, max(picked))
        transformer = self.model.encoder.transformer
        # Pre-LN blocks: the encoder ends with a LayerNorm (torchaudio's Transformer
        # flags this as ``layer_norm_first=False``: its norm is last, the blocks' first).
        pre_ln = bool(transformer.layers[-1].layer_norm_first)
        final = transformer.layer_norm if pre_ln else None
        return [
            final(states[k - 1]) if final is not None and k == depth else states[k - 1]
            for k in picked
        ]

    def front_end(self, waveforms: torch.Tensor, piece_frames: int = 32) -> torch.Tensor:
        """The convolutional front end (``model.feature_extractor``), ``piece_frames`` at a time.

        Returns ``[B, frames, channels]`` like ``model.feature_extractor``, up to
        float rounding, but never holds the 512-channel, 3.2 kHz activations of
        the whole input (160 MB for 24 s; small pieces are also faster, as they
        stay in the CPU caches): every layer is a valid convolution,
        so a stretch of output frames needs only its own receptive field. The
        base models' GroupNorm over time (first layer) gets its per-channel
        statistics from a first pass over the first convolution alone.
        """
        layers = list(self.model.feature_extractor.conv_layers)
        first = layers[0]
        norm = first.layer_norm
        if isinstance(norm, torch.nn.GroupNorm) and norm.num_groups != norm.num_channels:
            features: torch.Tensor = self.model.feature_extractor(waveforms, None)[0]
            return features  # statistics over channel groups: not worth a special case
        hop, field = self.frame_geometry()[:2]
        batch, n = waveforms.shape
        total = (n - field) // hop + 1
        x = waveforms.unsqueeze(1)
        kernel, stride = int(first.conv.kernel_size[0]), int(first.conv.stride[0])
        scale = shift = None
        if isinstance(norm, torch.nn.GroupNorm):
            first_frames = (n - kernel) // stride + 1
            step = piece_frames * (hop // stride)
            sums = torch.zeros(batch, norm.num_channels, dtype=torch.float64, device=x.device)
            squares = torch.zeros_like(sums)
            for a in range(0, first_frames, step):
                b = min(first_frames, a + step)
                y = first.conv(x[..., a * stride : (b - 1) * stride + kernel]).double()
                sums += y.sum(-1)
                squares += y.square().sum(-1)
            mean = sums / first_frames
            var = (squares / first_frames - mean.square()).clamp_min(0.0)
            rstd = torch.rsqrt(var + norm.eps)
            weight = norm.weight.double() if norm.weight is not None else 1.0
            bias = norm.bias.double() if norm.bias is not None else 0.0
            scale = (rstd * weight).to(x.dtype)[..., None]
            shift = (bias - mean * rstd * weight).to(x.dtype)[..., None]
        out: torch.Tensor | None = None
        for f0 in range(0, total, piece_frames):
            f1 = min(total, f0 + piece_frames)
            y = first.conv(x[..., f0 * hop : (f1 - 1) * hop + field])
            if scale is not None and shift is not None:
                y = torch.addcmul(shift, y, scale)
            elif norm is not None:
                y = norm(y)
            y = torch.nn.functional.gelu(y)
            for layer in layers[1:]:
                y, _ = layer(y, None)
            if out is None:
                out = y.new_empty(batch, total, y.shape[1])
            out[:, f0:f1] = y.transpose(1, 2)
        assert out is not None
        return out


def _factory(bundle: str) -> Any:
    def factory(**kwargs: Any) -> TorchaudioEmbedder:
        return TorchaudioEmbedder(bundle, **kwargs)

    return declare_settings(factory, TorchaudioEmbedder, drop=("bundle", "name"))


def _available(bundle: str) -> Any:
    return lambda: bundle_cache_path(bundle).is_file()


for _name, (_bundle_name, _dim, _layers, _licence) in TORCHAUDIO_BUNDLES.items():
    register_embedder(
        EmbedderSpec(
            name=_name,
            factory=_factory(_bundle_name),
            dim=_dim,
            num_layers=_layers,
            source=f"torchaudio.pipelines.{_bundle_name}",
            license=_licence,
            description=f"torchaudio {_bundle_name}, mean of the encoder output over time",
            weights_available=_available(_bundle_name),
        )
    )
