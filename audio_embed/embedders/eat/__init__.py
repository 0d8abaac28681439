"""EAT (Efficient Audio Transformer), re-implemented natively on torch and timm.

EAT (Chen et al., 2024, https://arxiv.org/abs/2401.03497) is a ViT over
Kaldi log-mel spectrograms, pretrained data2vec-2 style and fine-tuned on
AudioSet-2M. The released checkpoints live on the Hugging Face Hub as
*remote code* (``worstchan/EAT-base_epoch30_finetune_AS2M``). This module never
runs that remote code (no ``trust_remote_code``): it reads the Hub
``config.json`` into :class:`EATConfig` and loads ``model.safetensors``
strictly into :class:`EATModel`, an independent implementation whose
``state_dict`` keys are the checkpoint's keys without their ``model.`` prefix.

Architecture (what the checkpoint's numbers mean):

* patch embedding: a 16×16 conv (stride 16) over the ``[B, 1, T, 128]`` mel
  image, flattened **time-major** (token ``t·8 + f``);
* a fixed 2-D sin-cos table (stored in the checkpoint) added to the patch tokens
  only, sliced ``[:, :N]``: the first ``D/2`` channels encode the frequency
  patch, the last ``D/2`` the time patch;
* a CLS token prepended (no position), then ``pre_norm`` (LayerNorm, eps 1e-6);
* post-norm blocks: ``x = x + Attn(x); r = norm1(x); x = norm2(r + MLP(r))``,
  fused-qkv attention with a float32 softmax, exact (erf) GELU, eps 1e-6;
* no final norm on the features; the fine-tuned head is
  ``head(fc_norm(CLS))`` with ``fc_norm`` eps 1e-5 (PyTorch's default).

Preprocessing (:class:`EATFeatureExtractor`) follows the official
``feature_extract.py``: the waveform mean is removed (no 2^15 scaling), a
Kaldi fbank with a Hanning window and 128 bins is taken, the frames are
zero-padded or cut to ``target_length``, then normalised with
``(fbank + 4.268) / (2 · 4.569)``; padding happens before normalisation, so
padded frames hold ≈ 0.467.

``target_length``: the model was fine-tuned on 10 s clips padded/cut to 1024
frames, and the default keeps that (an 8 s window, 798 frames, is padded to
1024), so scanning windows look like the fine-tuning data. ``target_length=None``
instead pads each batch only to the next multiple of 16 frames (800 for 8 s),
which runs about 20 % fewer tokens; the padded tail then no longer matches
fine-tuning, but it is the same for every window of one length. Windows longer
than ``target_length`` frames are cut, as the original does.

The package: ``config`` (settings), ``network`` (the native model),
``checkpoint`` (finding and reading weights), ``features`` (preprocessing);
this module holds the embedder and its registry specs, and re-exports the
public names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.embedders.eat.checkpoint import load_eat_state_dict, resolve_checkpoint
from audio_embed.embedders.eat.config import DEFAULT_EAT_CHECKPOINT, EATConfig
from audio_embed.embedders.eat.features import EATFeatureExtractor
from audio_embed.embedders.eat.network import EATModel, sincos_positions
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, declare_settings, register_embedder

__all__ = [
    "DEFAULT_EAT_CHECKPOINT",
    "EATConfig",
    "EATEmbedder",
    "EATFeatureExtractor",
    "EATModel",
    "load_eat_state_dict",
    "resolve_checkpoint",
    "sincos_positions",
]


Pooling = Literal["mean", "cls"]


class EATEmbedder(LayeredEmbedder):
    """EAT as an :class:`~audio_embed.embedders.base.Embedder`.

    Args:
        checkpoint: a Hugging Face Hub id (fetched once, then read from the HF
            cache, also offline) or a local directory holding the Hub
            repository's ``config.json`` and ``model.safetensors``. Ignored
            when ``model`` is given.
        model: an already built :class:`EATModel` (tests and benchmarks use
            random-weight ones; see :meth:`from_config`).
        device: where to run; CUDA when present by default.
        pooling: ``"mean"`` (default) = mean of the frame tokens without the
            CLS token; ``"cls"`` = the CLS token. Applies to :meth:`embed` and
            to every block :class:`MultiLayerEmbedder` pools.
        target_length: fbank frames per window (see :class:`EATFeatureExtractor`
            and the module docstring); 1024 as in fine-tuning, None = the
            window's own length rounded up to a multiple of 16.

    :meth:`hidden_states` returns the block outputs ``[B, 1 + N, D]`` with the
    CLS token at index 0. No final norm is applied (EAT has none).
    """

    name = "EAT"
    #: Shared encoding: 6 s cores with 2 s of context on each side, so a segment
    #: (10 s) stays within the 10.24 s clips EAT was trained on and no token gets
    #: a position code it never saw in training.
    shared_chunk = 6.0

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] = DEFAULT_EAT_CHECKPOINT,
        *,
        model: EATModel | None = None,
        device: str | torch.device | None = None,
        pooling: Pooling = "mean",
        target_length: int | None = 1024,
    ) -> None:
        if pooling not in ("mean", "cls"):
            raise InvalidInputError(
                f"The 'pooling' parameter of EATEmbedder must be 'mean' or 'cls'. "
                f"Got {pooling!r} instead."
            )
        #: Where the weights came from (None for a model passed in).
        self.checkpoint: str | None = None
        if model is None:
            model = EATModel.from_pretrained(checkpoint)
            if os.fspath(checkpoint) != DEFAULT_EAT_CHECKPOINT:
                self.checkpoint = os.fspath(checkpoint)
        self.model = model.eval()
        config = self.model.config
        if config.in_chans != 1:
            raise CheckpointError(
                f"EATEmbedder feeds one mel channel; this model expects {config.in_chans}."
            )
        self.pooling: Pooling = pooling
        self.feature_extractor = EATFeatureExtractor(
            target_length, num_mel_bins=config.mel_bins, multiple_of=config.patch_size
        )
        self.dim = config.embed_dim
        self.num_layers = config.depth
        if target_length is not None:
            self.padded_input_seconds = (target_length - 1) * 0.01 + 0.025
        self.to(device or default_device())

    @classmethod
    def from_config(
        cls,
        config: EATConfig | None = None,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        pooling: Pooling = "mean",
        target_length: int | None = 1024,
    ) -> EATEmbedder:
        """An embedder over a randomly initialised :class:`EATModel` (tests, benchmarks).

        ``config`` defaults to EAT-base; ``seed`` (None = torch's global RNG
        as it stands) makes the weights reproducible.
        """
        if seed is None:
            model = EATModel(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = EATModel(config)
        return cls(model=model, device=device, pooling=pooling, target_length=target_length)

    def settings(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "target_length": self.feature_extractor.target_length}

    def weights_fingerprint(self) -> str:
        """The weights and the fbank settings."""
        import hashlib

        blob = super().weights_fingerprint() + repr(self.feature_extractor)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        mel = self.feature_extractor(waveforms)
        return self.model.hidden_states(mel, num_layers)

    def embed_layers(
        self, waveforms: torch.Tensor | np.ndarray, layers: Sequence[int]
    ) -> torch.Tensor:
        """Pooled blocks, concatenated; with ``pooling="cls"`` each block's CLS token."""
        if self.pooling != "cls":
            return super().embed_layers(waveforms, layers)
        batch = self.prepare(waveforms)
        with torch.inference_mode():
            states = self._hidden_states(batch, max(layers))
        return torch.cat([states[k - 1][:, 0] for k in layers], dim=-1).float()

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return self._hidden_states(waveforms, int(self.num_layers or 0))[-1][:, 0]
        return super()._embed_batch(waveforms)

    def frame_geometry(self) -> FrameGeometry | None:
        """One frame per time patch: 16 fbank frames (hop 2560 samples, field 2800).

        None with ``pooling="cls"``: a CLS token cannot be pooled per window.
        ``max_samples`` is the longest input the positional table covers.
        """
        if self.pooling == "cls":
            return None
        patch, hop, length = self.model.config.patch_size, 160, 400
        return FrameGeometry(
            hop=patch * hop,
            field=length + (patch - 1) * hop,
            max_samples=length + (self.model.config.max_frames - 1) * hop + hop - 1,
        )

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Patch tokens averaged over frequency, one per time patch (CLS dropped),
        only the time patches that lie in the input's own fbank frames.

        The fbank goes through the feature extractor as in per-window mode
        (zero-padded to ``target_length``), so tokens see the padding the model
        was fine-tuned with; the padding's own patches are not frames. EAT has
        no final norm.
        """
        config = self.model.config
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        natural = 1 + (int(waveforms.shape[1]) - 400) // 160
        mel = self.feature_extractor(waveforms)
        states = self.model.hidden_states(mel, max(picked))
        freq = config.freq_patches
        real = max(1, min(natural, int(mel.shape[2])) // config.patch_size)
        out = []
        for k in picked:
            s = states[k - 1]
            out.append(s[:, 1:].reshape(s.shape[0], -1, freq, s.shape[-1]).mean(dim=2)[:, :real])
        return out


def _eat(**kwargs: Any) -> EATEmbedder:
    return EATEmbedder(**kwargs)


declare_settings(_eat, EATEmbedder)


def _eat_available() -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(DEFAULT_EAT_CHECKPOINT, "model.safetensors")
    return isinstance(found, str)


register_embedder(
    EmbedderSpec(
        name="EAT",
        factory=_eat,
        dim=768,
        num_layers=12,
        source=f"hf:{DEFAULT_EAT_CHECKPOINT}",
        license="MIT",
        description="EAT base (AS-2M fine-tuned), mean of its time frames without CLS",
        weights_available=_eat_available,
    )
)
