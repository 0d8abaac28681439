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
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder

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

#: The Hugging Face Hub repository the ``EAT`` registry entry loads.
DEFAULT_EAT_CHECKPOINT = "worstchan/EAT-base_epoch30_finetune_AS2M"

#: Hub ``config.json`` keys that describe the file, not the architecture.
_HF_METADATA_KEYS = frozenset(
    {"architectures", "auto_map", "model_type", "torch_dtype", "transformers_version", "dtype"}
)


def _to_int_pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


@attrs.frozen(kw_only=True)
class EATConfig:
    """The architecture of an EAT checkpoint, as in its Hub ``config.json``.

    Defaults describe EAT-base (``worstchan/EAT-base_epoch30_finetune_AS2M``).
    ``max_length`` counts time *patches* of the positional table (768 patches
    = 12288 frames); ``img_size`` is the fine-tuning input (1024 frames × 128
    bins). Dropout and drop-path rates are kept for round-tripping only: the
    model is always used in eval mode.
    """

    depth: int = 12
    embed_dim: int = 768
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    stride: int = 16
    in_chans: int = 1
    mel_bins: int = 128
    max_length: int = 768
    img_size: tuple[int, int] = attrs.field(default=(1024, 128), converter=_to_int_pair)
    num_classes: int = 527
    model_variant: str = "finetune"
    qkv_bias: bool = True
    layer_norm_first: bool = False
    norm_eps: float = 1e-6
    norm_affine: bool = True
    fixed_positions: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    activation_dropout: float = 0.0
    post_mlp_drop: float = 0.0
    start_drop_path_rate: float = 0.0
    end_drop_path_rate: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EATConfig:
        """Build from a parsed ``config.json``; unknown architecture keys are an error."""
        if data.get("model_type", "eat") != "eat":
            raise CheckpointError(
                f"config.json describes a {data.get('model_type')!r} model, not an EAT "
                "model (model_type 'eat')."
            )
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(data) - names - _HF_METADATA_KEYS)
        if unknown:
            raise CheckpointError(
                f"config.json has keys EATConfig does not know: {unknown}. This checkpoint "
                "may use an EAT variant this implementation does not cover."
            )
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"config.json holds an invalid EAT configuration ({exc})."
            ) from exc

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> EATConfig:
        """Read a Hub-style ``config.json``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable JSON config ({exc}).") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}.")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The config as ``config.json`` values (``img_size`` as a list)."""
        data = attrs.asdict(self)
        data["img_size"] = list(self.img_size)
        return data

    @property
    def freq_patches(self) -> int:
        """Frequency patches per time patch in the positional table (8 for 128 bins)."""
        return self.mel_bins // self.patch_size

    @property
    def max_frames(self) -> int:
        """Longest input, in fbank frames, the positional table covers."""
        return self.max_length * self.patch_size


def sincos_positions(embed_dim: int, time_patches: int, freq_patches: int) -> torch.Tensor:
    """EAT's fixed 2-D sin-cos table, ``[1, time_patches · freq_patches, embed_dim]``.

    Rows are time-major (row ``t · freq_patches + f``). The first ``D/2``
    channels encode ``f``, the last ``D/2`` encode ``t``; each half is
    ``[sin(p·ω), cos(p·ω)]`` with ``ω_i = 10000^(−i/(D/4))``. Computed in
    float64, returned as float32.
    """
    if embed_dim % 4:
        raise InvalidInputError(
            f"The 'embed_dim' of an EAT model must be a multiple of 4 for its sin-cos "
            f"positions. Got {embed_dim} instead."
        )
    quarter = embed_dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    t = torch.arange(time_patches, dtype=torch.float64).repeat_interleave(freq_patches)
    f = torch.arange(freq_patches, dtype=torch.float64).repeat(time_patches)

    def half(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([half(f), half(t)], dim=1).float().unsqueeze(0)


class _PatchEmbed(nn.Module):
    """Conv patch embedding; output tokens are time-major ``[B, N, D]``."""

    def __init__(self, config: EATConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            config.in_chans, config.embed_dim, kernel_size=config.patch_size, stride=config.stride
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(mel)
        return out.flatten(2).transpose(1, 2)


class _FixedPositions(nn.Module):
    """Holds the sin-cos table as a persistent buffer (key ``positions``)."""

    positions: torch.Tensor

    def __init__(self, config: EATConfig) -> None:
        super().__init__()
        table = sincos_positions(config.embed_dim, config.max_length, config.freq_patches)
        self.register_buffer("positions", table)


class _Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and a float32 softmax."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise InvalidInputError(
                f"The 'embed_dim' of an EAT model must be divisible by 'num_heads'. "
                f"Got {dim} and {num_heads} instead."
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, N, hd]
        if q.dtype == torch.float32:
            # Same maths as the explicit path below; the softmax is float32 already.
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
            out = attn @ v
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
        return projected


class _Block(nn.Module):
    """Post-norm block: ``x += Attn(x); r = norm1(x); x = norm2(r + MLP(r))``."""

    def __init__(self, config: EATConfig) -> None:
        super().__init__()
        from timm.layers.mlp import Mlp

        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps, elementwise_affine=config.norm_affine)
        self.attn = _Attention(dim, config.num_heads, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps, elementwise_affine=config.norm_affine)
        self.mlp = Mlp(
            in_features=dim, hidden_features=int(dim * config.mlp_ratio), act_layer=nn.GELU
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        r = self.norm1(x)
        out: torch.Tensor = self.norm2(r + self.mlp(r))
        return out


class EATModel(nn.Module):
    """EAT encoder (and, for the ``"finetune"`` variant, its AudioSet head).

    Input: normalised mel images ``[B, 1, T, mel_bins]`` (``[B, T, mel_bins]``
    is accepted too) with ``T`` a multiple of ``patch_size``, as
    :class:`EATFeatureExtractor` makes them. Outputs have ``1 + N`` tokens,
    the CLS token first, then ``N = T/16 · 8`` patch tokens in time-major order.

    The ``state_dict`` keys are the Hub ``model.safetensors`` keys without their
    ``model.`` prefix; :meth:`load_checkpoint` handles the prefix.
    """

    def __init__(self, config: EATConfig | None = None) -> None:
        super().__init__()
        config = config or EATConfig()
        if config.layer_norm_first:
            raise CheckpointError(
                "EATConfig.layer_norm_first=True (pre-norm blocks) is not supported: every "
                "released EAT checkpoint uses post-norm blocks (layer_norm_first false)."
            )
        if config.model_variant not in ("finetune", "pretrain"):
            raise CheckpointError(
                f"EATConfig.model_variant must be 'finetune' or 'pretrain'. "
                f"Got {config.model_variant!r} instead."
            )
        self.config = config
        dim = config.embed_dim
        self.local_encoder = _PatchEmbed(config)
        self.extra_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.fixed_positional_encoder = _FixedPositions(config) if config.fixed_positions else None
        self.blocks = nn.ModuleList([_Block(config) for _ in range(config.depth)])
        self.pre_norm = nn.LayerNorm(
            dim, eps=config.norm_eps, elementwise_affine=config.norm_affine
        )
        self.fc_norm: nn.LayerNorm | None = None
        self.head: nn.Linear | None = None
        if config.model_variant == "finetune":
            self.fc_norm = nn.LayerNorm(dim)  # eps 1e-5, as in the reference
            self.head = nn.Linear(dim, config.num_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random initialisation as in the reference (truncated normal, std 0.02)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.extra_tokens, std=0.02)

    # -- the forward pass, in stages -------------------------------------------------

    def _check_input(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.ndim == 3:
            mel = mel.unsqueeze(1)
        if mel.ndim != 4 or mel.shape[1] != self.config.in_chans:
            raise InvalidInputError(
                f"EATModel expects mel images of shape [batch, {self.config.in_chans}, frames, "
                f"{self.config.mel_bins}]. Got shape {tuple(mel.shape)} instead."
            )
        if mel.shape[2] > self.config.max_frames:
            raise InvalidInputError(
                f"EATModel takes at most {self.config.max_frames} frames (its positional table "
                f"covers {self.config.max_length} time patches). Got {mel.shape[2]} frames; "
                "cut the audio into shorter windows."
            )
        return mel

    def patch_embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, D]``, time-major, before positions."""
        out: torch.Tensor = self.local_encoder(self._check_input(mel))
        return out

    def embed_tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """The input of block 1: positions added, CLS prepended, ``pre_norm`` applied."""
        x = self.patch_embed(mel)
        if self.fixed_positional_encoder is not None:
            x = x + self.fixed_positional_encoder.positions[:, : x.shape[1]].to(x.dtype)
        x = torch.cat([self.extra_tokens.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        out: torch.Tensor = self.pre_norm(x)
        return out

    def hidden_states(self, mel: torch.Tensor, num_layers: int | None = None) -> list[torch.Tensor]:
        """Outputs of blocks 1..``num_layers`` (all when None), each ``[B, 1 + N, D]``.

        Blocks past ``num_layers`` are not run.
        """
        depth = len(self.blocks)
        n = depth if num_layers is None else int(num_layers)
        if not 0 <= n <= depth:
            raise InvalidInputError(
                f"The 'num_layers' parameter of EATModel.hidden_states must be in [0, {depth}]. "
                f"Got {num_layers!r} instead."
            )
        x = self.embed_tokens(mel)
        states: list[torch.Tensor] = []
        for block in self.blocks[:n]:
            x = block(x)
            states.append(x)
        return states

    def extract_features(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder output ``[B, 1 + N, D]`` (CLS first; no final norm)."""
        states = self.hidden_states(mel)
        return states[-1] if states else self.embed_tokens(mel)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """AudioSet logits (no sigmoid) from encoder features: ``head(fc_norm(CLS))``."""
        if self.fc_norm is None or self.head is None:
            raise InvalidInputError(
                "This EAT model is a 'pretrain' variant and has no classification head."
            )
        out: torch.Tensor = self.head(self.fc_norm(features[:, 0]))
        return out

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for a finetune model, else the features."""
        features = self.extract_features(mel)
        if self.head is None:
            return features
        return self.logits(features)

    # -- loading -----------------------------------------------------------------------

    def load_checkpoint(
        self, state: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
    ) -> None:
        """Load a state dict strictly, with or without the Hub's ``model.`` prefix.

        Raises :class:`CheckpointError` when keys or shapes do not fit.
        """
        if state and all(k.startswith("model.") for k in state):
            state = {k[len("model.") :]: v for k, v in state.items()}
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [
            f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
            for k in own
            if k in state and tuple(state[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"{source} does not fit the EAT architecture of its config "
                f"(depth {self.config.depth}, embed_dim {self.config.embed_dim}, variant "
                f"{self.config.model_variant!r}): {len(missing)} missing keys {missing[:3]}, "
                f"{len(unexpected)} unexpected keys {unexpected[:3]}, "
                f"{len(wrong)} shape mismatches {wrong[:3]}. Check that config.json and "
                "model.safetensors come from the same checkpoint."
            )
        self.load_state_dict(dict(state), strict=True)

    @classmethod
    def from_pretrained(
        cls, checkpoint: str | os.PathLike[str] = DEFAULT_EAT_CHECKPOINT
    ) -> EATModel:
        """Build and load from a Hub id or a local directory (see :func:`resolve_checkpoint`)."""
        config_path, weights_path = resolve_checkpoint(checkpoint)
        model = cls(EATConfig.from_json(config_path))
        model.load_checkpoint(load_eat_state_dict(weights_path), source=str(weights_path))
        return model.eval()


def load_eat_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``model.safetensors`` file (on CPU)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises several unrelated types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}).") from exc


def resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Paths of ``config.json`` and ``model.safetensors`` for a local directory or Hub id.

    A Hub id is fetched with :func:`huggingface_hub.hf_hub_download` on a
    connected machine, or read from the Hugging Face cache offline (set
    ``HF_HUB_OFFLINE=1`` to skip the network entirely).
    """
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        files = (path / "config.json", path / "model.safetensors")
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(
                f"{path} is not an EAT checkpoint directory: it lacks {', '.join(absent)}. "
                "It must hold the Hub repository's config.json and model.safetensors."
            )
        return files
    text = os.fspath(checkpoint)
    looks_local = text.startswith((".", "/", "~", "\\")) or text.count("/") > 1 or "\\" in text
    if isinstance(checkpoint, os.PathLike) or looks_local:
        raise CheckpointError(
            f"EAT checkpoint directory not found: {path}. Pass a directory holding "
            "config.json and model.safetensors, or a Hugging Face Hub id."
        )
    from huggingface_hub import hf_hub_download

    try:
        config = hf_hub_download(text, "config.json")
        weights = hf_hub_download(text, "model.safetensors")
    except Exception as exc:
        raise CheckpointError(
            f"Could not fetch the EAT checkpoint {text!r} from the Hugging Face Hub ({exc}). "
            "Without network access, download it once on a connected machine (it is then "
            "read from the Hugging Face cache; set HF_HUB_OFFLINE=1), or pass a local "
            "directory holding its config.json and model.safetensors."
        ) from exc
    return Path(config), Path(weights)


class EATFeatureExtractor:
    """Waveforms ``[B, N]`` at 16 kHz → normalised Kaldi fbank images ``[B, 1, T, 128]``.

    Args:
        target_length: frames to zero-pad or cut to (1024 = 10.24 s, the
            fine-tuning length). None pads each batch to the next multiple of
            ``multiple_of`` frames instead and never cuts. Must be a multiple of
            ``multiple_of`` (the patch size) when given.
        num_mel_bins: mel bins (128 for every released EAT).
        multiple_of: the patch size in frames.
    """

    sample_rate: int = 16000
    mean: float = -4.268
    std: float = 4.569

    def __init__(
        self, target_length: int | None = 1024, *, num_mel_bins: int = 128, multiple_of: int = 16
    ) -> None:
        if multiple_of < 1:
            raise InvalidInputError(
                f"The 'multiple_of' parameter of EATFeatureExtractor must be >= 1. "
                f"Got {multiple_of} instead."
            )
        if target_length is not None and (target_length < 1 or target_length % multiple_of):
            raise InvalidInputError(
                f"The 'target_length' parameter of EATFeatureExtractor must be a positive "
                f"multiple of {multiple_of} frames (or None). Got {target_length} instead."
            )
        self.target_length = target_length
        self.num_mel_bins = num_mel_bins
        self.multiple_of = multiple_of

    def __repr__(self) -> str:
        return (
            f"EATFeatureExtractor(target_length={self.target_length}, "
            f"num_mel_bins={self.num_mel_bins})"
        )

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """Raw Kaldi fbank ``[frames, num_mel_bins]`` of one 1-D waveform, mean removed."""
        from torchaudio.compliance import kaldi

        if waveform.ndim != 1 or waveform.shape[0] < 400:
            raise InvalidInputError(
                "EATFeatureExtractor.fbank expects one 1-D waveform of at least 400 samples "
                f"(25 ms). Got shape {tuple(waveform.shape)} instead."
            )
        waveform = waveform.float()
        fbank: torch.Tensor = kaldi.fbank(
            (waveform - waveform.mean()).unsqueeze(0),
            htk_compat=True,
            sample_frequency=self.sample_rate,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=self.num_mel_bins,
            dither=0.0,
            frame_shift=10,
        )
        return fbank

    def frames_for(self, num_samples: int) -> int:
        """Frames of model input produced for a waveform of ``num_samples`` samples."""
        natural = 1 + (num_samples - 400) // 160 if num_samples >= 400 else 0
        if self.target_length is not None:
            return self.target_length
        return max(1, math.ceil(natural / self.multiple_of)) * self.multiple_of

    def __call__(self, waveforms: torch.Tensor, *, frames: int | None = None) -> torch.Tensor:
        """Normalised model input ``[B, 1, T, num_mel_bins]`` for ``[B, N]`` (or ``[N]``) audio.

        ``frames`` overrides :meth:`frames_for`: the fbank is zero-padded or cut
        to exactly that many frames (shared encoding cuts to whole patches).
        """
        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise InvalidInputError(
                f"EATFeatureExtractor expects waveforms of shape [batch, samples]. "
                f"Got shape {tuple(waveforms.shape)} instead."
            )
        length = self.frames_for(int(waveforms.shape[1])) if frames is None else int(frames)
        out = waveforms.new_zeros((waveforms.shape[0], 1, length, self.num_mel_bins))
        for i, waveform in enumerate(waveforms):
            fb = self.fbank(waveform)[:length]
            out[i, 0, : fb.shape[0]] = fb
        return (out - self.mean) / (2.0 * self.std)


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
