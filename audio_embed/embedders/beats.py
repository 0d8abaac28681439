"""BEATs (Chen et al., 2022, "Audio Pre-Training with Acoustic Tokenizers"), natively.

A from-scratch PyTorch implementation of the BEATs encoder whose state dict has
exactly the key names and shapes of the official checkpoints (``microsoft/unilm``,
folder ``beats/``), so a released ``.pt`` file loads strictly. It was checked
number for number against the reference code with the random-weight vectors in
``tests/data/beats_tiny*``.

The parts:

* :class:`BEATsConfig`: the official ``cfg`` dict as a frozen value.
* :class:`BEATsFeatureExtractor`: waveform → normalised Kaldi fbank (kept apart
  from the model, as transformers keeps feature extractors apart).
* :class:`BEATsModel`: fbank → patch tokens → transformer encoder (→ the
  AudioSet predictor head for fine-tuned checkpoints).
* :class:`BEATsEmbedder`: the library's :class:`LayeredEmbedder` over both.

What the architecture does, in short:

* 16×16 patches of the ``[frames, 128]`` fbank, flattened **time-major**
  (token ``t·8 + f``), LayerNorm over the patch channels, then a linear
  projection to the encoder width. There is no CLS token.
* A weight-normalised grouped convolution over the token sequence adds a
  relative positional signal before the first block.
* Post-LN "deep-norm" blocks: ``x = LN(α·x + Attn(x))``, ``x = LN(α·x + FFN(x))``
  with ``α = (2·layers)^¼``.
* Attention logits get a bucketed relative-position bias (T5-style, log-spaced
  buckets), computed once from layer 0's table and gated per layer and per query
  by a small GRU-like gate (``gru_rel_pos``).

Training-only behaviour (layer drop, layer-wise gradient decay) is not
implemented: the model is for inference. Dropout is applied in ``train()`` mode.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder

__all__ = [
    "DEFAULT_CHECKPOINT_NAME",
    "BEATsConfig",
    "BEATsEmbedder",
    "BEATsFeatureExtractor",
    "BEATsModel",
    "BEATsOutput",
    "default_checkpoint_path",
    "forward_padding_mask",
    "load_beats_checkpoint",
    "relative_position_bucket",
]

#: File name of the default checkpoint (BEATs iter3+, fine-tuned on AudioSet-2M).
DEFAULT_CHECKPOINT_NAME = "BEATs_iter3_plus_AS2M.pt"
#: Where the official checkpoints are listed.
OFFICIAL_PAGE = "https://github.com/microsoft/unilm/tree/master/beats"

_ACTIVATIONS = ("gelu", "gelu_accurate", "gelu_fast", "relu", "tanh", "linear")


def default_checkpoint_path() -> Path:
    """Where the default checkpoint is looked for: torch hub's ``checkpoints`` folder.

    The file may not exist; :class:`BEATsEmbedder` says how to get it when it does not.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / DEFAULT_CHECKPOINT_NAME


# --------------------------------------------------------------------------- config


@attrs.frozen(kw_only=True)
class BEATsConfig:
    """The architecture settings, named as in the official checkpoints' ``cfg`` dict.

    The defaults are those of the released iter3+ checkpoints (12 blocks of
    width 768, 3072 FFN, 12 heads, 512-channel 16×16 patches, deep norm, gated
    relative positions with 320 buckets and max distance 800). Build one from a
    checkpoint's dict with :meth:`from_dict`.
    """

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"

    layer_wise_gradient_decay_ratio: float = 0.6
    layer_norm_first: bool = False
    deep_norm: bool = True

    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.05
    dropout_input: float = 0.0

    conv_pos: int = 128
    conv_pos_groups: int = 16

    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True

    finetuned_model: bool = False
    predictor_dropout: float = 0.0
    predictor_class: int = 527

    def __attrs_post_init__(self) -> None:
        def fail(message: str) -> None:
            raise InvalidInputError(f"Invalid BEATsConfig: {message}")

        for name in (
            "input_patch_size",
            "embed_dim",
            "encoder_layers",
            "encoder_embed_dim",
            "encoder_ffn_embed_dim",
            "encoder_attention_heads",
            "conv_pos",
            "conv_pos_groups",
            "predictor_class",
        ):
            if getattr(self, name) <= 0:
                fail(f"'{name}' must be > 0. Got {getattr(self, name)} instead.")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            fail(
                f"'encoder_embed_dim' ({self.encoder_embed_dim}) must be divisible by "
                f"'encoder_attention_heads' ({self.encoder_attention_heads})."
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            fail(
                f"'encoder_embed_dim' ({self.encoder_embed_dim}) must be divisible by "
                f"'conv_pos_groups' ({self.conv_pos_groups})."
            )
        if self.deep_norm and self.layer_norm_first:
            fail("'deep_norm' and 'layer_norm_first' cannot both be true.")
        if self.activation_fn not in _ACTIVATIONS:
            fail(
                f"'activation_fn' must be one of {', '.join(_ACTIVATIONS)}. "
                f"Got {self.activation_fn!r} instead."
            )
        if self.relative_position_embedding and (self.num_buckets < 4 or self.max_distance < 1):
            fail(
                "relative positions need 'num_buckets' >= 4 and 'max_distance' >= 1. "
                f"Got {self.num_buckets} and {self.max_distance} instead."
            )

    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_attention_heads

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> BEATsConfig:
        """Build from an official ``cfg`` dict. Unknown keys are ignored.

        Values are converted to each field's type (``int``, ``float``, ``bool``,
        ``str``); a value that cannot be converted raises :class:`InvalidInputError`.
        """
        if not isinstance(cfg, Mapping):
            raise InvalidInputError(
                f"BEATsConfig.from_dict expects a mapping. Got {type(cfg).__name__} instead."
            )
        kwargs: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if field.name not in cfg:
                continue
            value = cfg[field.name]
            kind = type(field.default)
            try:
                if kind is bool:
                    if not isinstance(value, (bool, int)):
                        raise TypeError(f"expected a bool, got {type(value).__name__}")
                    kwargs[field.name] = bool(value)
                elif kind is int:
                    if isinstance(value, float) and not value.is_integer():
                        raise TypeError(f"expected an integer, got {value!r}")
                    kwargs[field.name] = int(value)
                else:
                    kwargs[field.name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"Invalid BEATsConfig: cannot read '{field.name}' = {value!r} ({exc})."
                ) from exc
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (the official ``cfg`` layout)."""
        return attrs.asdict(self)


# --------------------------------------------------------------------------- preprocessing


def forward_padding_mask(padding_mask: Tensor, length: int) -> Tensor:
    """Reduce a ``[B, N]`` padding mask to ``[B, length]`` as the reference does.

    The trailing ``N % length`` entries are dropped, the rest is viewed as
    ``[B, length, N // length]`` and an output position is padding when all of
    its inputs are. BEATs applies this twice: samples → fbank frames, then
    frames → tokens (ignoring that tokens are ordered time-major).
    """
    if padding_mask.ndim != 2:
        raise InvalidInputError(
            f"A padding mask must have shape [batch, length]. Got {tuple(padding_mask.shape)}."
        )
    if length <= 0:
        raise InvalidInputError(f"The target length of a padding mask must be > 0. Got {length}.")
    mask = padding_mask.bool()
    extra = mask.shape[1] % length
    if extra > 0:
        mask = mask[:, : mask.shape[1] - extra]
    return mask.reshape(mask.shape[0], length, -1).all(dim=-1)


@attrs.frozen(kw_only=True)
class BEATsFeatureExtractor:
    """Waveform → normalised Kaldi log-mel fbank, BEATs' model input.

    The waveform (float in [-1, 1]) is scaled by 2^15, passed through
    ``torchaudio.compliance.kaldi.fbank`` (25 ms frames, 10 ms hop, 128 bins,
    everything else at Kaldi's defaults: povey window, no dither, pre-emphasis
    0.97, snip edges), then normalised with ``(fbank − mean) / (2·std)``.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    fbank_mean: float = 15.41663
    fbank_std: float = 6.55582
    waveform_scale: float = 2.0**15

    @property
    def frame_length(self) -> int:
        """Samples per fbank frame (400 at 16 kHz)."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        """Samples between fbank frames (160 at 16 kHz)."""
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Fbank frames produced from ``num_samples`` samples (Kaldi ``snip_edges``)."""
        if num_samples < self.frame_length:
            return 0
        return 1 + (num_samples - self.frame_length) // self.frame_shift

    def min_samples(self, frames: int) -> int:
        """Fewest samples that give ``frames`` fbank frames."""
        return self.frame_length + (frames - 1) * self.frame_shift

    def __call__(self, waveforms: Tensor) -> Tensor:
        """``[B, N]`` float waveforms → ``[B, frames, num_mel_bins]`` float32 fbank."""
        import torchaudio.compliance.kaldi as kaldi

        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise InvalidInputError(
                "BEATsFeatureExtractor expects waveforms of shape [batch, samples]. "
                f"Got {tuple(waveforms.shape)} instead."
            )
        if waveforms.shape[1] < self.frame_length:
            raise InvalidInputError(
                f"BEATsFeatureExtractor needs at least {self.frame_length} samples "
                f"(one {self.frame_length_ms:g} ms frame). Got {waveforms.shape[1]}."
            )
        fbanks = [
            kaldi.fbank(
                row.float().unsqueeze(0) * self.waveform_scale,
                num_mel_bins=self.num_mel_bins,
                sample_frequency=float(self.sample_rate),
                frame_length=self.frame_length_ms,
                frame_shift=self.frame_shift_ms,
            )
            for row in waveforms
        ]
        fbank = torch.stack(fbanks, dim=0)
        return (fbank - self.fbank_mean) / (2 * self.fbank_std)

    def frame_padding_mask(self, padding_mask: Tensor, num_frames: int) -> Tensor:
        """Sample-level ``[B, N]`` mask (True = padding) → frame-level ``[B, num_frames]``.

        Uses the reference's reduction (:func:`forward_padding_mask`), not the
        frames' true extents: a frame is padding when all of its
        ``N // num_frames`` samples in a plain reshape are.
        """
        return forward_padding_mask(padding_mask, num_frames)


# --------------------------------------------------------------------------- modules


def relative_position_bucket(
    relative_positions: Tensor, num_buckets: int = 320, max_distance: int = 800
) -> Tensor:
    """Bidirectional log-spaced buckets of ``relative_positions`` (key − query).

    Half the buckets are for positive offsets (shifted by ``num_buckets // 2``).
    Within a half, offsets below a quarter of ``num_buckets`` map exactly, larger
    ones log-spaced up to ``max_distance``, clamped to the half's last bucket.
    """
    half = num_buckets // 2
    buckets = (relative_positions > 0).to(torch.long) * half
    distance = relative_positions.abs()
    max_exact = half // 2
    is_small = distance < max_exact
    # Same float32 operations, in the same order, as the reference: the floors
    # at bucket edges depend on it.
    scaled = (
        torch.log(distance.clamp(min=1).float() / max_exact)
        / math.log(max_distance / max_exact)
        * (half - max_exact)
    )
    large = (max_exact + scaled.to(torch.long)).clamp(max=half - 1)
    return buckets + torch.where(is_small, distance, large)


def _activation(name: str, x: Tensor) -> Tensor:
    if name == "gelu":
        return F.gelu(x.float()).type_as(x)
    if name in ("gelu_accurate", "gelu_fast"):
        return F.gelu(x.float(), approximate="tanh").type_as(x)
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    return x


class _WeightNormConv1d(nn.Module):
    """A grouped Conv1d whose kernel is ``g · v / ‖v‖`` (norm per tap, over dims 0 and 1).

    Stores ``weight_g`` [1, 1, k] and ``weight_v`` under the names torch's
    legacy ``nn.utils.weight_norm(conv, dim=2)`` gives them.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))
        std = math.sqrt(4.0 / (kernel_size * channels))
        with torch.no_grad():
            nn.init.normal_(self.weight_v, mean=0.0, std=std)
            self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True))

    def weight(self) -> Tensor:
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)
        weight: Tensor = self.weight_v * (self.weight_g / norm)
        return weight

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class _SamePad(nn.Module):
    """Drop the last output frame of an even-kernel convolution padded by k // 2."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        return x[..., : x.shape[-1] - self.remove] if self.remove else x


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a gated relative-position bias.

    ``relative_attention_bias`` is layer 0's own table; later layers hold a
    reference to it (so the state dict lists it under every layer, as the
    official checkpoints do) but only the encoder's layer-0 bias is ever used.
    """

    grep_a: nn.Parameter | None
    relative_attention_bias: nn.Embedding | None
    grep_linear: nn.Linear | None

    def __init__(self, cfg: BEATsConfig, shared_bias: nn.Embedding | None) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.num_heads = cfg.encoder_attention_heads
        self.head_dim = cfg.head_dim
        self.scaling = self.head_dim**-0.5
        self.dropout = cfg.attention_dropout
        if cfg.gru_rel_pos:
            self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))
        else:
            self.register_parameter("grep_a", None)
        # Registration order reproduces the official state-dict order.
        own_table = cfg.relative_position_embedding and shared_bias is None
        self.relative_attention_bias = (
            nn.Embedding(cfg.num_buckets, self.num_heads) if own_table else None
        )
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8) if cfg.gru_rel_pos else None
        if cfg.relative_position_embedding and shared_bias is not None:
            self.relative_attention_bias = shared_bias

    def forward(
        self, x: Tensor, position_bias: Tensor | None, key_padding_mask: Tensor | None
    ) -> Tensor:
        """``x`` [B, T, D]; ``position_bias`` [H, T, T] (ungated); mask [B, T], True = pad."""
        batch, length, dim = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        q: Tensor = self.q_proj(x)
        k: Tensor = self.k_proj(x)
        v: Tensor = self.v_proj(x)
        q = q.view(batch, length, heads, head_dim).transpose(1, 2)
        k = k.view(batch, length, heads, head_dim).transpose(1, 2)
        v = v.view(batch, length, heads, head_dim).transpose(1, 2)

        bias: Tensor | None = None
        if position_bias is not None:
            bias = position_bias.to(q.dtype).unsqueeze(0)  # [1, H, T, T]
            if self.grep_linear is not None and self.grep_a is not None:
                # The gate reads the unscaled per-head query (bias included).
                gate_in: Tensor = self.grep_linear(q)  # [B, H, T, 8]
                gates = torch.sigmoid(gate_in.view(batch, heads, length, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)  # [B, H, T, 1] each
                multiplier = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
                bias = multiplier * bias  # [B, H, T, T]
        if key_padding_mask is not None:
            pad = key_padding_mask.view(batch, 1, 1, length)
            if bias is None:
                bias = torch.zeros(batch, 1, 1, length, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(pad, float("-inf"))
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scaling,
        )
        out = out.transpose(1, 2).reshape(batch, length, dim)
        projected: Tensor = self.out_proj(out)
        return projected


class _EncoderLayer(nn.Module):
    """One transformer block: post-LN with deep-norm residual scaling, or pre-LN."""

    def __init__(self, cfg: BEATsConfig, shared_bias: nn.Embedding | None) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.activation_fn = cfg.activation_fn
        self.layer_norm_first = cfg.layer_norm_first
        self.dropout = cfg.dropout
        self.activation_dropout = cfg.activation_dropout
        self.self_attn = _SelfAttention(cfg, shared_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1.0

    def _ffn(self, x: Tensor) -> Tensor:
        hidden: Tensor = self.fc1(x)
        hidden = _activation(self.activation_fn, hidden)
        hidden = F.dropout(hidden, self.activation_dropout, self.training)
        out: Tensor = self.fc2(hidden)
        return F.dropout(out, self.dropout, self.training)

    def forward(
        self, x: Tensor, position_bias: Tensor | None, key_padding_mask: Tensor | None
    ) -> Tensor:
        if self.layer_norm_first:
            attn: Tensor = self.self_attn(
                self.self_attn_layer_norm(x), position_bias, key_padding_mask
            )
            x = x + F.dropout(attn, self.dropout, self.training)
            return x + self._ffn(self.final_layer_norm(x))
        attn = self.self_attn(x, position_bias, key_padding_mask)
        x = x * self.alpha + F.dropout(attn, self.dropout, self.training)
        x = self.self_attn_layer_norm(x)
        x = x * self.alpha + self._ffn(x)
        out: Tensor = self.final_layer_norm(x)
        return out


class _TransformerEncoder(nn.Module):
    """Positional convolution, then the blocks (run up to a requested depth)."""

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            _WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups),
            _SamePad(cfg.conv_pos),
            nn.GELU(),
        )
        layers: list[_EncoderLayer] = []
        shared: nn.Embedding | None = None
        for _ in range(cfg.encoder_layers):
            layer = _EncoderLayer(cfg, shared)
            shared = layer.self_attn.relative_attention_bias
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(dim)

    def relative_bias(self, length: int, device: torch.device) -> Tensor | None:
        """The ungated ``[H, length, length]`` bias from layer 0's table (None if unused)."""
        first = self.layers[0]
        assert isinstance(first, _EncoderLayer)
        table = first.self_attn.relative_attention_bias
        if table is None:
            return None
        positions = torch.arange(length, dtype=torch.long, device=device)
        relative = positions[None, :] - positions[:, None]  # key − query
        buckets = relative_position_bucket(relative, self.cfg.num_buckets, self.cfg.max_distance)
        values: Tensor = table(buckets)  # [T, T, H]
        return values.permute(2, 0, 1)

    def forward(
        self, x: Tensor, padding_mask: Tensor | None, num_layers: int
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Returns ``(encoder output, [output of block 1, block 2, …], input to block 1)``.

        Element ``k - 1`` of the list is block ``k``'s raw output, as in
        :meth:`EATModel.hidden_states`; the encoder output has the final
        LayerNorm when ``layer_norm_first`` and every block ran.
        """
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        conv: Tensor = self.pos_conv(x.transpose(1, 2))
        x = x + conv.transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, self.cfg.dropout, self.training)
        first = x
        states: list[Tensor] = []
        position_bias = self.relative_bias(x.shape[1], x.device)
        for layer in self.layers[:num_layers]:
            x = layer(x, position_bias, padding_mask)
            states.append(x)
        if self.cfg.layer_norm_first and num_layers == len(self.layers):
            x = self.layer_norm(x)
        return x, states, first


class BEATsOutput(NamedTuple):
    """What :meth:`BEATsModel.extract_features` returns.

    Attributes:
        features: ``[B, T, D]`` encoder output (output of the last block run).
        padding_mask: ``[B, T]`` token mask (True = padding), or None.
        hidden_states: ``[output of block 1, block 2, …]``, each ``[B, T, D]``
            (element ``k - 1`` = block ``k``, raw, as in :class:`EATModel`).
        frame_logits: ``[B, T, classes]`` predictor output per token (fine-tuned
            models, all blocks run, predictor requested), else None.
        lprobs: ``[B, classes]`` sigmoid of the mean of ``frame_logits`` over the
            unmasked tokens, else None.
    """

    features: Tensor
    padding_mask: Tensor | None
    hidden_states: list[Tensor]
    frame_logits: Tensor | None
    lprobs: Tensor | None
    #: ``[B, T, D]`` the input to block 1 (patch tokens after positions and norm).
    embeddings: Tensor | None = None


class BEATsModel(nn.Module):
    """The BEATs network: fbank → patch tokens → encoder (→ predictor).

    ``state_dict()`` has the official key names and shapes, so
    ``model.load_state_dict(checkpoint["model"])`` works strictly.
    """

    post_extract_proj: nn.Linear | None
    predictor: nn.Linear | None

    def __init__(self, cfg: BEATsConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if cfg is None:
            cfg = BEATsConfig()
        elif not isinstance(cfg, BEATsConfig):
            cfg = BEATsConfig.from_dict(cfg)
        self.cfg = cfg
        dim = cfg.encoder_embed_dim
        self.post_extract_proj = nn.Linear(cfg.embed_dim, dim) if cfg.embed_dim != dim else None
        self.patch_embedding = nn.Conv2d(
            1,
            cfg.embed_dim,
            kernel_size=cfg.input_patch_size,
            stride=cfg.input_patch_size,
            bias=cfg.conv_bias,
        )
        self.encoder = _TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.predictor = nn.Linear(dim, cfg.predictor_class) if cfg.finetuned_model else None
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Random initialisation in the spirit of the reference (BERT-style, deep-norm gains)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if self.cfg.deep_norm:
            beta = math.pow(8 * self.cfg.encoder_layers, -1 / 4)
            for layer in self.encoder.layers:
                assert isinstance(layer, _EncoderLayer)
                nn.init.xavier_normal_(layer.self_attn.k_proj.weight, gain=1.0)
                nn.init.xavier_normal_(layer.self_attn.v_proj.weight, gain=beta)
                nn.init.xavier_normal_(layer.self_attn.q_proj.weight, gain=1.0)
                nn.init.xavier_normal_(layer.self_attn.out_proj.weight, gain=beta)
                nn.init.xavier_normal_(layer.fc1.weight, gain=beta)
                nn.init.xavier_normal_(layer.fc2.weight, gain=beta)

    @property
    def num_layers(self) -> int:
        return self.cfg.encoder_layers

    def patch_tokens(
        self, fbank: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``[B, frames, mel]`` fbank (+ ``[B, frames]`` mask) → ``[B, T, D]`` tokens (+ mask).

        Tokens are time-major: token ``t · (mel / patch) + f``. Trailing frames
        that do not fill a patch are dropped.
        """
        if fbank.ndim != 3:
            raise InvalidInputError(
                f"BEATsModel expects an fbank of shape [batch, frames, mel_bins]. "
                f"Got {tuple(fbank.shape)} instead."
            )
        patch = self.cfg.input_patch_size
        if fbank.shape[1] < patch or fbank.shape[2] < patch:
            raise InvalidInputError(
                f"BEATsModel needs at least {patch} fbank frames and {patch} mel bins "
                f"(one {patch}x{patch} patch). Got {tuple(fbank.shape[1:])}."
            )
        weight = self.patch_embedding.weight
        features: Tensor = self.patch_embedding(fbank.to(weight.dtype).unsqueeze(1))
        features = features.reshape(features.shape[0], features.shape[1], -1).transpose(1, 2)
        features = self.layer_norm(features)
        token_mask = None
        if padding_mask is not None:
            token_mask = forward_padding_mask(padding_mask, features.shape[1])
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        features = F.dropout(features, self.cfg.dropout_input, self.training)
        return features, token_mask

    def classify(
        self, features: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predictor head: ``(frame_logits [B, T, C], lprobs [B, C])``.

        ``lprobs`` is the sigmoid of the mean of the frame logits over unmasked tokens.
        """
        if self.predictor is None:
            raise InvalidInputError(
                "This BEATs model has no predictor head (cfg.finetuned_model is False)."
            )
        x = F.dropout(features, self.cfg.predictor_dropout, self.training)
        frame_logits: Tensor = self.predictor(x)
        if padding_mask is not None and bool(padding_mask.any()):
            kept = (~padding_mask).sum(dim=1, keepdim=True).to(frame_logits.dtype)
            pooled = frame_logits.masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1) / kept
        else:
            pooled = frame_logits.mean(dim=1)
        return frame_logits, torch.sigmoid(pooled)

    def extract_features(
        self,
        fbank: Tensor,
        padding_mask: Tensor | None = None,
        *,
        num_layers: int | None = None,
        predict: bool = True,
    ) -> BEATsOutput:
        """Run the model on a normalised fbank.

        Args:
            fbank: ``[B, frames, mel_bins]`` from :class:`BEATsFeatureExtractor`.
            padding_mask: ``[B, frames]`` frame-level mask, True = padding (see
                :meth:`BEATsFeatureExtractor.frame_padding_mask`), or None.
            num_layers: run only blocks 1..num_layers (all when None).
            predict: also run the predictor head when the model has one and all
                blocks ran.
        """
        total = self.cfg.encoder_layers
        n = total if num_layers is None else int(num_layers)
        if not 1 <= n <= total:
            raise InvalidInputError(
                f"The 'num_layers' parameter of BEATsModel.extract_features must be in "
                f"[1, {total}]. Got {num_layers!r} instead."
            )
        tokens, token_mask = self.patch_tokens(fbank, padding_mask)
        features, states, first = self.encoder(tokens, token_mask, n)
        frame_logits = lprobs = None
        if predict and self.predictor is not None and n == total:
            frame_logits, lprobs = self.classify(features, token_mask)
        return BEATsOutput(features, token_mask, states, frame_logits, lprobs, first)

    def forward(self, fbank: Tensor, padding_mask: Tensor | None = None) -> BEATsOutput:
        return self.extract_features(fbank, padding_mask)


# --------------------------------------------------------------------------- loading


def _is_url(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


def _resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """A local path, or an URL downloaded (once) into torch hub's checkpoints folder."""
    if not _is_url(checkpoint):
        return Path(checkpoint).expanduser()
    url = str(checkpoint)
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise CheckpointError(f"Cannot tell a file name from the checkpoint URL {url!r}.")
    target = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Writes to a temporary file and moves it into place when complete.
            torch.hub.download_url_to_file(url, str(target), progress=True)
        except Exception as exc:
            raise CheckpointError(
                f"Could not download the BEATs checkpoint from {url} ({exc}). On a "
                "machine without network access, download it elsewhere and pass "
                "checkpoint=<path to the .pt file>."
            ) from exc
    return target


def _infer_cfg(state: Mapping[str, Any]) -> dict[str, Any]:
    """A cfg for a bare state dict: the iter3+ defaults, predictor read from the weights."""
    cfg: dict[str, Any] = {}
    predictor = state.get("predictor.weight")
    if isinstance(predictor, Tensor) and predictor.ndim == 2:
        cfg["finetuned_model"] = True
        cfg["predictor_class"] = int(predictor.shape[0])
    return cfg


def load_beats_checkpoint(checkpoint: str | os.PathLike[str]) -> BEATsModel:
    """Build a :class:`BEATsModel` from an official checkpoint file (or URL), strictly.

    The file is what the official repository releases: ``{'cfg': dict, 'model':
    state_dict, …}``; a bare state dict is read with the default (iter3+) cfg.
    It is opened with ``torch.load(..., weights_only=True)``: nothing in it is
    executed. Raises :class:`CheckpointError` when the file is missing, not a
    checkpoint, or does not fit the architecture its cfg describes.
    """
    path = _resolve_checkpoint(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"BEATs checkpoint file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a loadable torch checkpoint, or it holds objects other than "
            f"tensors and plain containers, which weights_only=True refuses ({exc})."
        ) from exc
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict with 'cfg' and 'model' (or a state dict). "
            f"Found {type(loaded).__name__}."
        )
    if "model" in loaded and isinstance(loaded["model"], Mapping):
        state: Mapping[str, Any] = loaded["model"]
        cfg_dict = loaded.get("cfg")
        if cfg_dict is None:
            cfg_dict = _infer_cfg(state)
    else:
        state = loaded
        cfg_dict = _infer_cfg(state)
    if not isinstance(cfg_dict, Mapping):
        raise CheckpointError(
            f"{path}: the checkpoint's 'cfg' is a {type(cfg_dict).__name__}, not a dict."
        )
    try:
        cfg = BEATsConfig.from_dict(cfg_dict)
    except InvalidInputError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    with torch.device("meta"):
        model = BEATsModel(cfg)
    _check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().eval()


def _describe(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _check_state_dict(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {_describe(state[k])} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and (not isinstance(state[k], Tensor) or state[k].shape != v.shape)
    ]
    if missing or unexpected or wrong:
        cfg = model.cfg if isinstance(model, BEATsModel) else None
        arch = (
            f"{cfg.encoder_layers} blocks, width {cfg.encoder_embed_dim}, "
            f"{cfg.encoder_attention_heads} heads, patch channels {cfg.embed_dim}"
            if cfg is not None
            else "the BEATs architecture"
        )
        raise CheckpointError(
            f"{path} does not fit the BEATs architecture its cfg describes ({arch}): "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[:3]}). Is it a "
            f"BEATs checkpoint from {OFFICIAL_PAGE}?"
        )


# --------------------------------------------------------------------------- embedder


class BEATsEmbedder(LayeredEmbedder):
    """BEATs as an :class:`Embedder`: the mean over tokens of the encoder output.

    Args:
        checkpoint: an official BEATs ``.pt`` file, as a local path or an https
            URL (downloaded once into torch hub's ``checkpoints`` folder). When
            None (and no ``model``), :func:`default_checkpoint_path` is used:
            ``BEATs_iter3_plus_AS2M.pt`` in torch hub's checkpoints folder.
        model: an already built :class:`BEATsModel` (tests and benchmarks use
            random-weight ones, see :meth:`from_config`).
        device: where to run; CUDA when present by default.
        feature_extractor: the fbank front end; the official settings by default.

    :meth:`hidden_states` returns the outputs of blocks 1..n (``[B, T, D]``,
    T = 8 tokens per 16 fbank frames, time-major) and runs only those blocks.
    The AudioSet predictor head of fine-tuned checkpoints is not used.
    """

    name = "BEATS"
    source: ClassVar[str] = OFFICIAL_PAGE
    #: Shorter segments than the default: the gated relative-position bias is
    #: computed densely, so attention grows faster with length than in wav2vec2.
    shared_chunk = 12.0

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        model: BEATsModel | None = None,
        device: str | torch.device | None = None,
        feature_extractor: BEATsFeatureExtractor | None = None,
    ) -> None:
        if model is not None and checkpoint is not None:
            raise InvalidInputError("BEATsEmbedder takes either 'checkpoint' or 'model', not both.")
        if model is None:
            if checkpoint is None:
                checkpoint = default_checkpoint_path()
                if not Path(checkpoint).is_file():
                    raise CheckpointError(
                        f"The BEATs checkpoint {DEFAULT_CHECKPOINT_NAME} was not found at "
                        f"{checkpoint}. Download 'BEATs_iter3+ (AS2M) (cpt2)' from the "
                        f"official list at {OFFICIAL_PAGE} and save it there, or pass "
                        "checkpoint=<path or https URL of a BEATs .pt file>."
                    )
            model = load_beats_checkpoint(checkpoint)
            if os.fspath(checkpoint) != os.fspath(default_checkpoint_path()):
                self.checkpoint = os.fspath(checkpoint)
        elif not isinstance(model, BEATsModel):
            raise InvalidInputError(
                f"The 'model' parameter of BEATsEmbedder must be a BEATsModel. "
                f"Got {type(model).__name__} instead."
            )
        self.model = model.eval()
        self.feature_extractor = feature_extractor or BEATsFeatureExtractor()
        cfg = model.cfg
        self.dim = cfg.encoder_embed_dim
        self.num_layers = cfg.encoder_layers
        self.sample_rate = self.feature_extractor.sample_rate
        self.min_samples = self.feature_extractor.min_samples(cfg.input_patch_size)
        self.to(device or default_device())

    @classmethod
    def from_config(
        cls,
        cfg: BEATsConfig | Mapping[str, Any] | None = None,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
    ) -> BEATsEmbedder:
        """A random-weight embedder of the given architecture (tests, benchmarks).

        ``seed`` makes the weights reproducible without touching the global RNG.
        """
        if seed is None:
            model = BEATsModel(cfg)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = BEATsModel(cfg)
        return cls(model=model, device=device)

    @property
    def model_config(self) -> BEATsConfig:
        """The network's architecture (:class:`BEATsConfig`)."""
        return self.model.cfg

    def weights_fingerprint(self) -> str:
        """The weights and the fbank settings."""
        import hashlib

        blob = super().weights_fingerprint() + repr(self.feature_extractor)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _fbank(self, waveforms: Tensor) -> Tensor:
        return self.feature_extractor(waveforms)

    def _hidden_states(self, waveforms: Tensor, num_layers: int) -> list[Tensor]:
        out = self.model.extract_features(
            self._fbank(waveforms), num_layers=num_layers, predict=False
        )
        return out.hidden_states[:num_layers]

    def frame_geometry(self) -> FrameGeometry:
        """One frame per time patch: 16 fbank frames (hop 2560 samples, field 2800)."""
        fe, patch = self.feature_extractor, self.model.cfg.input_patch_size
        return FrameGeometry(
            hop=patch * fe.frame_shift, field=fe.frame_length + (patch - 1) * fe.frame_shift
        )

    def encode_frames(self, waveforms: Tensor, layers: tuple[int, ...] | None) -> list[Tensor]:
        """Tokens averaged over the frequency patches of each time patch (time-major
        order); the last block's are the encoder output (final LayerNorm included
        for ``layer_norm_first`` models).

        The mean of these over a window's time patches is the mean over all its tokens.
        """
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        out = self.model.extract_features(
            self._fbank(waveforms), num_layers=max(picked), predict=False
        )
        chosen = [out.features if k == depth else out.hidden_states[k - 1] for k in picked]
        freq = self.feature_extractor.num_mel_bins // self.model.cfg.input_patch_size
        return [s.reshape(s.shape[0], -1, freq, s.shape[-1]).mean(dim=2) for s in chosen]


def _beats(**kwargs: Any) -> BEATsEmbedder:
    return BEATsEmbedder(**kwargs)


def _beats_available() -> bool:
    return Path(default_checkpoint_path()).is_file()


register_embedder(
    EmbedderSpec(
        name="BEATS",
        factory=_beats,
        dim=768,
        num_layers=12,
        source=f"{DEFAULT_CHECKPOINT_NAME} (microsoft/unilm)",
        license="MIT",
        description="BEATs iter3+ (AS-2M fine-tuned), mean of the encoder output over time",
        weights_available=_beats_available,
    )
)
