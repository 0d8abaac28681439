"""BEATs settings: the official ``cfg`` dict as a frozen value; the default checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from audio_embed.errors import InvalidInputError

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
