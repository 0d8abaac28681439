"""The EAT network: patch embedding, fixed sin-cos positions, ViT blocks."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from audio_embed.embedders.eat.checkpoint import load_eat_state_dict, resolve_checkpoint
from audio_embed.embedders.eat.config import DEFAULT_EAT_CHECKPOINT, EATConfig
from audio_embed.errors import CheckpointError, InvalidInputError


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
