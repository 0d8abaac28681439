"""Embedders: the :class:`Embedder` contract and the built-in models.

Heavy backends (transformers, the BEATs/EAT implementations) are imported only
when a model that needs them is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audio_embed.embedders.base import Embedder, LayeredEmbedder
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.embedders.torchaudio import TORCHAUDIO_BUNDLES, TorchaudioEmbedder

__all__ = [
    "Embedder",
    "LayeredEmbedder",
    "LogMelEmbedder",
    "MultiLayerEmbedder",
    "TorchaudioEmbedder",
    "register_builtins",
]


def _hf_cached(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def _torchaudio_factory(bundle: str) -> Any:
    def factory(**kwargs: Any) -> Embedder:
        return TorchaudioEmbedder(bundle, **kwargs)

    return factory


def _torchaudio_available(bundle: str) -> Any:
    def check() -> bool:
        from audio_embed.embedders.torchaudio import bundle_cache_path

        return bundle_cache_path(bundle).is_file()

    return check


def _ast(**kwargs: Any) -> Embedder:
    from audio_embed.embedders.ast import ASTEmbedder

    return ASTEmbedder(**kwargs)


def _eat(**kwargs: Any) -> Embedder:
    from audio_embed.embedders.eat import EATEmbedder

    return EATEmbedder(**kwargs)


def _beats(**kwargs: Any) -> Embedder:
    from audio_embed.embedders.beats import BEATsEmbedder

    return BEATsEmbedder(**kwargs)


def _beats_available() -> bool:
    from audio_embed.embedders.beats import default_checkpoint_path

    return Path(default_checkpoint_path()).is_file()


def register_builtins() -> None:
    """Register every built-in model (called once, lazily, by the registry)."""
    from audio_embed.registry import EmbedderSpec, register_embedder

    for name, (bundle, dim, layers, licence) in TORCHAUDIO_BUNDLES.items():
        register_embedder(
            EmbedderSpec(
                name=name,
                factory=_torchaudio_factory(bundle),
                dim=dim,
                num_layers=layers,
                source=f"torchaudio.pipelines.{bundle}",
                license=licence,
                description=f"torchaudio {bundle}, mean of the encoder output over time",
                weights_available=_torchaudio_available(bundle),
            )
        )
    register_embedder(
        EmbedderSpec(
            name="LOGMEL",
            factory=LogMelEmbedder,
            dim=4 * 64,
            source="none (weight-free)",
            license="n/a",
            description="log-mel band statistics (mean, std, max, |delta|); no weights",
        )
    )
    register_embedder(
        EmbedderSpec(
            name="AST",
            factory=_ast,
            dim=768,
            num_layers=12,
            source="hf:MIT/ast-finetuned-audioset-10-10-0.4593",
            license="BSD-3-Clause",
            description="Audio Spectrogram Transformer (AudioSet), mean of the last hidden state",
            weights_available=lambda: _hf_cached(
                "MIT/ast-finetuned-audioset-10-10-0.4593", "config.json"
            ),
        )
    )
    register_embedder(
        EmbedderSpec(
            name="EAT",
            factory=_eat,
            dim=768,
            num_layers=12,
            source="hf:worstchan/EAT-base_epoch30_finetune_AS2M",
            license="MIT",
            description="EAT base (AS-2M fine-tuned), mean of the frame tokens without CLS",
            weights_available=lambda: _hf_cached(
                "worstchan/EAT-base_epoch30_finetune_AS2M", "model.safetensors"
            ),
        )
    )
    register_embedder(
        EmbedderSpec(
            name="BEATS",
            factory=_beats,
            dim=768,
            num_layers=12,
            source="BEATs_iter3_plus_AS2M.pt (microsoft/unilm)",
            license="MIT",
            description="BEATs iter3+ (AS-2M fine-tuned), mean of the encoder output over time",
            weights_available=_beats_available,
        )
    )
    from audio_embed.embedders.birdnet import birdnet_specs
    from audio_embed.embedders.whisper import whisper_specs

    for spec in [*whisper_specs(), *birdnet_specs()]:
        register_embedder(spec)
