"""Tiny random-weight models built in-process (nothing is downloaded)."""

from __future__ import annotations

import torch
from torchaudio.models import wav2vec2_model, wavlm_model

# The real front end's kernels and strides (320-sample hop, 400-sample field), narrow.
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]


def _common(layers: int, dim: int, layer_norm_first: bool) -> dict[str, object]:
    """Arguments wav2vec2_model and wavlm_model share."""
    return dict(
        extractor_mode="layer_norm" if layer_norm_first else "group_norm",
        extractor_conv_layer_config=CONV,
        extractor_conv_bias=layer_norm_first,
        encoder_embed_dim=dim,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=4,
        encoder_num_layers=layers,
        encoder_num_heads=2,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=2 * dim,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=layer_norm_first,
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )


def tiny_wav2vec2(
    layers: int = 8, dim: int = 32, *, layer_norm_first: bool = False, seed: int = 0
) -> torch.nn.Module:
    torch.manual_seed(seed)
    return wav2vec2_model(**_common(layers, dim, layer_norm_first)).eval()  # type: ignore[arg-type]


def tiny_wavlm(layers: int = 4, dim: int = 32, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = wavlm_model(
        **_common(layers, dim, False),  # type: ignore[arg-type]
        encoder_num_buckets=32,
        encoder_max_distance=64,
    )
    return model.eval()
