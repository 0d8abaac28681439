"""AST: the embedder against transformers' own outputs, on a tiny random-weight model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTForAudioClassification,
    ASTModel,
)

from audio_embed.embedders.ast import ASTEmbedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.errors import CheckpointError, InvalidInputError

LAYERS, DIM = 4, 32


def extractor(**kwargs: Any) -> ASTFeatureExtractor:
    cls: Any = ASTFeatureExtractor  # its __init__ is untyped
    result: ASTFeatureExtractor = cls(**kwargs)
    return result


def tiny_config() -> ASTConfig:
    return ASTConfig(
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=2 * DIM,
        max_length=100,
        num_mel_bins=32,
    )


@pytest.fixture(scope="module")
def tiny_model() -> ASTModel:
    torch.manual_seed(0)
    model = ASTModel(tiny_config())
    model.train(False)
    with torch.no_grad():  # non-trivial special tokens and positions
        model.embeddings.cls_token.normal_()
        model.embeddings.distillation_token.normal_()
        model.embeddings.position_embeddings.normal_(std=0.5)
    return model


@pytest.fixture
def embedder(tiny_model: ASTModel) -> ASTEmbedder:
    return ASTEmbedder(model=tiny_model, device="cpu")


@pytest.fixture(scope="module")
def waves() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return 0.1 * torch.randn(3, 16000, generator=g)


def reference(model: ASTModel, waves: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """transformers' own outputs: last_hidden_state and hidden_states (index 0 = embeddings)."""
    values = extractor(num_mel_bins=32, max_length=100)(
        list(waves.numpy()), sampling_rate=16000, return_tensors="pt"
    )
    with torch.no_grad():
        out = model(values["input_values"], output_hidden_states=True)
    return out.last_hidden_state, list(out.hidden_states)


def test_attributes(embedder: ASTEmbedder) -> None:
    assert (embedder.name, embedder.dim, embedder.num_layers) == ("AST", DIM, LAYERS)
    assert embedder.sample_rate == 16000 and embedder.checkpoint is None
    assert embedder.feature_extractor.max_length == 100


def time_frames(state: torch.Tensor, samples: int) -> torch.Tensor:
    """The frame contract by hand: patch tokens (no CLS/distillation) averaged over
    frequency, only the time steps inside the input's own fbank frames."""
    config = tiny_config()
    freq = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    fbank_frames = min(config.max_length, 1 + (samples - 400) // 160)
    real = (fbank_frames - config.patch_size) // config.time_stride + 1
    grid = state[:, 2:].reshape(state.shape[0], freq, time, state.shape[-1]).mean(dim=1)
    return grid[:, :real]


def test_embed_is_mean_of_the_time_frames_of_last_hidden_state(
    embedder: ASTEmbedder, tiny_model: ASTModel, waves: torch.Tensor
) -> None:
    last, _ = reference(tiny_model, waves)
    vectors = embedder.embed(waves, sample_rate=16000)
    assert vectors.shape == (3, DIM)
    frames = time_frames(last, waves.shape[1])
    assert frames.shape[1] == 9  # 98 fbank frames: 9 whole time patches of 10 (+6)
    torch.testing.assert_close(vectors, frames.mean(dim=1))
    torch.testing.assert_close(embedder.frame_states(waves)[0], frames)


def test_hidden_states_are_transformers_blocks(
    embedder: ASTEmbedder, tiny_model: ASTModel, waves: torch.Tensor
) -> None:
    _, hidden = reference(tiny_model, waves)
    assert len(hidden) == LAYERS + 1
    states = embedder.hidden_states(waves)
    assert len(states) == LAYERS
    for k, state in enumerate(states, start=1):
        torch.testing.assert_close(state, hidden[k])  # block k = hidden_states[k]


def test_hidden_states_stop_early(embedder: ASTEmbedder, waves: torch.Tensor) -> None:
    calls: list[int] = []
    hooks = [
        block.register_forward_hook(lambda *_, i=i: calls.append(i))
        for i, block in enumerate(embedder.model.layers)
    ]
    try:
        states = embedder.hidden_states(waves, num_layers=2)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(states) == 2
    assert calls == [0, 1]


def test_multilayer_slices(
    embedder: ASTEmbedder, tiny_model: ASTModel, waves: torch.Tensor
) -> None:
    _, hidden = reference(tiny_model, waves)
    multi = MultiLayerEmbedder(embedder)  # quartiles of 4 blocks: 1, 2, 3, 4
    assert multi.layers == (1, 2, 3, 4) and multi.dim == 4 * DIM
    vectors = multi.embed(waves)
    last, _ = reference(tiny_model, waves)
    n = waves.shape[1]
    for i, k in enumerate(multi.layers):
        state = last if k == LAYERS else hidden[k]  # the last block with the final LayerNorm
        want = time_frames(state, n).mean(dim=1)
        torch.testing.assert_close(vectors[:, DIM * i : DIM * (i + 1)], want)
    picked = MultiLayerEmbedder(embedder, layers=[3]).embed(waves)
    torch.testing.assert_close(picked, time_frames(hidden[3], n).mean(dim=1))
    torch.testing.assert_close(vectors[:, -DIM:], embedder.embed(waves))


def test_classification_model_is_unwrapped(tiny_model: ASTModel, waves: torch.Tensor) -> None:
    classifier = ASTForAudioClassification(tiny_config())
    classifier.train(False)
    classifier.audio_spectrogram_transformer.load_state_dict(tiny_model.state_dict())
    a = ASTEmbedder(model=classifier, device="cpu").embed(waves)
    b = ASTEmbedder(model=tiny_model, device="cpu").embed(waves)
    torch.testing.assert_close(a, b)


def test_local_directory(tmp_path: Path, tiny_model: ASTModel, waves: torch.Tensor) -> None:
    tiny_model.save_pretrained(tmp_path)
    extractor(num_mel_bins=32, max_length=100).save_pretrained(tmp_path)
    loaded = ASTEmbedder(tmp_path, device="cpu")
    assert loaded.checkpoint == str(tmp_path)
    torch.testing.assert_close(
        loaded.embed(waves), ASTEmbedder(model=tiny_model, device="cpu").embed(waves)
    )


def test_mismatched_feature_extractor(tiny_model: ASTModel) -> None:
    with pytest.raises(InvalidInputError, match="feature extractor"):
        ASTEmbedder(model=tiny_model, feature_extractor=extractor(), device="cpu")


def test_load_failure_is_a_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> ASTModel:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(ASTModel, "from_pretrained", offline)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        ASTEmbedder("MIT/ast-finetuned-audioset-10-10-0.4593", device="cpu")


def test_missing_local_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        ASTEmbedder(tmp_path / "missing", device="cpu")


def test_windows_longer_than_the_model_input_are_cut_with_a_warning(
    embedder: ASTEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    emb = embedder
    frames = int(emb.feature_extractor.max_length)
    long = torch.randn(1, (frames + 50) * 160 + 400) * 0.1
    assert emb.embed(long).shape == (1, emb.dim)
    assert "longer windows" in caplog.text
