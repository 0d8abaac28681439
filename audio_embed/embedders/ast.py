"""AST (Audio Spectrogram Transformer) through Hugging Face transformers.

:class:`ASTEmbedder` wraps transformers' ``ASTModel`` and its
``ASTFeatureExtractor`` (Kaldi fbank, padded or cut to the model's
``max_length`` frames — 1024 for the AudioSet checkpoints, so an 8 s window is
zero-padded to 10.24 s — then normalised with the AudioSet mean and std).

Embedding (the frame contract): the mean over *time frames* of
``last_hidden_state`` (after the model's final LayerNorm): patch tokens
averaged over frequency, one per time step, without the CLS and distillation
tokens and without the time steps that only the feature extractor's zero
padding fills (an 8 s window is padded to 10.24 s). Per-window and shared
encoding pool the same frames. ``MultiLayerEmbedder`` pools block ``k``'s
frames the same way; block 12's include the final LayerNorm, so the last slice
of ``AST_ML`` equals ``AST``. (The original library averaged all tokens,
padding and CLS included; vectors differ from its.)

Layers: block ``k`` is transformers' ``hidden_states[k]`` (index 0 there is the
embedding output, before any block); :meth:`ASTEmbedder.hidden_states` runs the
embeddings and then only blocks ``1..k`` itself, so nothing past the deepest
requested block is computed. Note on the history: the original code indexed
``hidden_states[2, 5, 8, 11]`` for its multi-layer AST variant — one block
earlier than its plan (blocks 3, 6, 9, 12), because of that index-0 embedding
output. ``AST_ML`` here uses blocks 3, 6, 9, 12 (the quartiles, i.e.
``hidden_states[3, 6, 9, 12]``), so its vectors differ from the original's.

Loading: any AST id on the Hugging Face Hub or a local directory saved with
``save_pretrained`` (``config.json``, the weights and ``preprocessor_config.json``).
A Hub checkpoint is downloaded once and read from the Hugging Face cache after
that, also offline (set ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, cast

import torch

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder

if TYPE_CHECKING:
    from transformers import ASTFeatureExtractor, ASTModel

__all__ = ["DEFAULT_AST_CHECKPOINT", "ASTEmbedder"]

log = logging.getLogger(__name__)

#: The Hugging Face Hub checkpoint the ``AST`` registry entry loads.
DEFAULT_AST_CHECKPOINT = "MIT/ast-finetuned-audioset-10-10-0.4593"


def _offline_advice(checkpoint: str) -> str:
    return (
        "Without network access, load it once on a connected machine (it is then read "
        "from the Hugging Face cache; set HF_HUB_OFFLINE=1), or pass a local directory "
        f"written by ASTModel.save_pretrained and ASTFeatureExtractor.save_pretrained "
        f"(e.g. after ASTModel.from_pretrained({checkpoint!r}) on a connected machine)."
    )


def _load_model(checkpoint: str) -> ASTModel:
    from transformers import ASTModel

    try:
        model = ASTModel.from_pretrained(checkpoint)
    except Exception as exc:  # OSError, HTTP errors, bad configs…
        raise CheckpointError(
            f"Could not load the AST model {checkpoint!r} ({exc}). " + _offline_advice(checkpoint)
        ) from exc
    return model


def _load_feature_extractor(checkpoint: str) -> ASTFeatureExtractor:
    from transformers import ASTFeatureExtractor

    try:
        extractor = ASTFeatureExtractor.from_pretrained(checkpoint)
    except Exception as exc:
        raise CheckpointError(
            f"Could not load the AST feature extractor of {checkpoint!r} ({exc}). "
            + _offline_advice(checkpoint)
        ) from exc
    return extractor


def _hf_cached(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def _blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer blocks: ``model.layers`` (transformers >= 5) or ``encoder.layer``."""
    blocks = getattr(model, "layers", None)
    if blocks is None:
        blocks = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(blocks, torch.nn.ModuleList):
        raise CheckpointError(
            f"{type(model).__name__} does not look like a transformers ASTModel "
            "(no 'layers' or 'encoder.layer' block list)."
        )
    return blocks


class ASTEmbedder(LayeredEmbedder):
    """An Audio Spectrogram Transformer as an :class:`~audio_embed.embedders.base.Embedder`.

    Args:
        checkpoint: a Hugging Face Hub id of any AST checkpoint, or a local
            directory (see the module docstring). Ignored for the model when
            ``model`` is given, and for the feature extractor when
            ``feature_extractor`` is given.
        model: an already built ``transformers.ASTModel`` (or
            ``ASTForAudioClassification``, whose encoder is used); tests build
            tiny random-weight ones from a small ``ASTConfig``.
        feature_extractor: a ``transformers.ASTFeatureExtractor``. Defaults to
            the checkpoint's; when only ``model`` is given, to one matching the
            model's ``max_length`` and ``num_mel_bins`` with AudioSet statistics.
        device: where to run; CUDA when present by default.
    """

    name = "AST"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] = DEFAULT_AST_CHECKPOINT,
        *,
        model: torch.nn.Module | None = None,
        feature_extractor: ASTFeatureExtractor | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        source = os.fspath(checkpoint)
        model_given = model is not None
        #: Where the weights came from (None for the default or a model passed in).
        self.checkpoint: str | None = None
        if model is None:
            model = _load_model(source)
            self.checkpoint = None if source == DEFAULT_AST_CHECKPOINT else source
        inner = getattr(model, "audio_spectrogram_transformer", None)
        if isinstance(inner, torch.nn.Module):  # ASTForAudioClassification
            model = inner
        config: Any = getattr(model, "config", None)
        if config is None or not hasattr(model, "embeddings"):
            raise CheckpointError(
                f"ASTEmbedder needs a transformers ASTModel. Got {type(model).__name__}."
            )
        if feature_extractor is None:
            if model_given is False:
                feature_extractor = _load_feature_extractor(source)
            else:
                from transformers import ASTFeatureExtractor

                extractor_cls: Any = ASTFeatureExtractor  # its __init__ is untyped
                feature_extractor = extractor_cls(
                    num_mel_bins=int(config.num_mel_bins), max_length=int(config.max_length)
                )
        if (int(feature_extractor.max_length), int(feature_extractor.num_mel_bins)) != (
            int(config.max_length),
            int(config.num_mel_bins),
        ):
            raise InvalidInputError(
                f"The AST feature extractor makes {feature_extractor.max_length} frames × "
                f"{feature_extractor.num_mel_bins} mel bins, but the model expects "
                f"{config.max_length} × {config.num_mel_bins}. Use the feature extractor "
                "saved with the checkpoint."
            )
        self.model: ASTModel = cast("ASTModel", model.eval())
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.dim = int(config.hidden_size)
        self.num_layers = len(_blocks(self.model))
        self.padded_input_seconds = (int(config.max_length) - 1) * 0.01 + 0.025
        self._warned_cut = False
        self.to(device or default_device())

    def weights_fingerprint(self) -> str:
        """The model's weights and its feature extractor's settings (they come together)."""
        import hashlib
        import json

        fe = json.dumps(self.feature_extractor.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256((super().weights_fingerprint() + fe).encode()).hexdigest()

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Model input ``[B, max_length, num_mel_bins]`` for a ``[B, N]`` batch.

        The extractor works on numpy, one waveform at a time; the whole batch
        goes through it in one call and comes back as one tensor on :attr:`device`.
        """
        array = waveforms.detach().float().cpu().numpy()
        max_frames = int(self.feature_extractor.max_length)
        frames = (array.shape[1] - 400) // 160 + 1  # Kaldi fbank: 25 ms frames every 10 ms
        if frames > max_frames and not self._warned_cut:
            self._warned_cut = True
            log.warning(
                "AST sees at most %d frames (%.2f s); longer windows (%.2f s) are cut to "
                "that length, as its feature extractor does. Use a shorter window.",
                max_frames,
                (max_frames - 1) * 0.01 + 0.025,
                array.shape[1] / self.sample_rate,
            )
        out = self.feature_extractor(
            list(array), sampling_rate=self.sample_rate, return_tensors="pt"
        )
        values = cast(torch.Tensor, out["input_values"])
        return values.to(self.device)

    def _run_blocks(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        hidden = cast(torch.Tensor, self.model.embeddings(self.features(waveforms)))
        states: list[torch.Tensor] = []
        for block in _blocks(self.model)[:num_layers]:
            out = block(hidden)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers < 5 returns tuples
            states.append(hidden)
        return states

    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        return self._run_blocks(waveforms, num_layers)

    def _patch_grid(self) -> tuple[int, int]:
        """Patches along frequency and time of one (padded) input: 12 × 101 for AudioSet AST."""
        config: Any = self.model.config
        freq = (int(config.num_mel_bins) - int(config.patch_size)) // int(config.frequency_stride)
        time = (int(config.max_length) - int(config.patch_size)) // int(config.time_stride)
        return freq + 1, time + 1

    def frame_geometry(self) -> FrameGeometry:
        """One frame per time step of the patch grid: ``time_stride`` fbank frames apart
        (hop 1600 samples, field 2800 for AudioSet AST); at most ``max_length``
        frames (10.24 s) per input, the positional table's size."""
        config: Any = self.model.config
        hop, length = 160, 400  # Kaldi fbank: 25 ms frames every 10 ms
        return FrameGeometry(
            hop=int(config.time_stride) * hop,
            field=length + (int(config.patch_size) - 1) * hop,
            max_samples=length + (int(config.max_length) - 1) * hop + hop - 1,
        )

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Patch tokens averaged over frequency, one per time step (CLS and
        distillation tokens dropped), only the time steps whose patches lie in
        the input's own fbank frames (not the extractor's padding); the last
        block gets the final LayerNorm, as ``last_hidden_state`` does. Tokens
        are frequency-major (``f · T + t``).
        """
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        states = self._run_blocks(waveforms, max(picked))
        freq, time = self._patch_grid()
        config: Any = self.model.config
        frames = 1 + (int(waveforms.shape[1]) - 400) // 160
        frames = min(frames, int(config.max_length))
        real = max(1, (frames - int(config.patch_size)) // int(config.time_stride) + 1)
        out = []
        for k in picked:
            s = states[k - 1]
            if k == depth:
                s = cast(torch.Tensor, self.model.layernorm(s))
            grid = s[:, 2:].reshape(s.shape[0], freq, time, s.shape[-1]).mean(dim=1)
            out.append(grid[:, : min(real, time)])
        return out


register_embedder(
    EmbedderSpec(
        name="AST",
        factory=ASTEmbedder,
        dim=768,
        num_layers=12,
        source=f"hf:{DEFAULT_AST_CHECKPOINT}",
        license="BSD-3-Clause",
        description="Audio Spectrogram Transformer (AudioSet), mean of its time frames",
        weights_available=lambda: _hf_cached(DEFAULT_AST_CHECKPOINT, "config.json"),
    )
)
