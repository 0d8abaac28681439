"""EAT settings: the Hub ``config.json`` as a frozen value."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from audio_embed.errors import CheckpointError

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
