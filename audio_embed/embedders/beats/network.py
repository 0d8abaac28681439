"""The BEATs network: patch embedding, relative-position transformer encoder, predictor head."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_embed.embedders.beats.config import BEATsConfig
from audio_embed.embedders.beats.features import forward_padding_mask
from audio_embed.errors import InvalidInputError


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
