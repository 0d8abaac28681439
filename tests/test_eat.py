"""EAT: the native model against the reference vectors (random weights, no download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from numeric import assert_log_energies_close, assert_scaled_close, log_energy_violations
from safetensors.torch import load_file

from audio_embed.embedders.eat import (
    EATConfig,
    EATEmbedder,
    EATFeatureExtractor,
    EATModel,
    sincos_positions,
)
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.errors import CheckpointError, InvalidInputError

DATA = Path(__file__).parent / "data"
TINY = DATA / "eat_tiny"


@pytest.fixture(scope="module")
def tiny_model() -> EATModel:
    return EATModel.from_pretrained(TINY)


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    with np.load(DATA / "eat_tiny_io.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def preproc() -> dict[str, np.ndarray]:
    with np.load(DATA / "eat_preproc_io.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def tiny_embedder() -> EATEmbedder:
    return EATEmbedder(TINY, device="cpu", target_length=64)


def assert_close(actual: torch.Tensor, expected: np.ndarray, atol: float) -> None:
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=0, atol=atol)


# -- loading -----------------------------------------------------------------------------


def test_tiny_checkpoint_keys_match_strictly(tiny_model: EATModel) -> None:
    stored = load_file(str(TINY / "model.safetensors"))
    own = {"model." + k: v for k, v in tiny_model.state_dict().items()}
    assert set(own) == set(stored)
    for key, value in stored.items():
        assert torch.equal(own[key], value), key


def test_config_reads_hub_json() -> None:
    config = EATConfig.from_json(TINY / "config.json")
    assert (config.depth, config.embed_dim, config.num_heads, config.max_length) == (2, 64, 4, 16)
    assert config.img_size == (64, 128)
    assert config.norm_eps == 1e-6 and config.model_variant == "finetune"
    assert EATConfig.from_dict(config.to_dict()) == config


def test_config_refuses_other_models() -> None:
    with pytest.raises(CheckpointError, match="model_type"):
        EATConfig.from_dict({"model_type": "beats"})
    with pytest.raises(CheckpointError, match="rope_theta"):
        EATConfig.from_dict({"model_type": "eat", "rope_theta": 1.0})


def test_prefix_free_state_dict_loads(tiny_model: EATModel) -> None:
    fresh = EATModel(tiny_model.config)
    fresh.load_checkpoint(tiny_model.state_dict())
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


@pytest.mark.parametrize(
    "config",
    [
        EATConfig(depth=3, embed_dim=64, num_heads=4, max_length=16, num_classes=5),
        EATConfig(depth=2, embed_dim=32, num_heads=4, max_length=16, num_classes=5),
        EATConfig(depth=2, embed_dim=64, num_heads=4, max_length=16, model_variant="pretrain"),
    ],
    ids=["deeper", "narrower", "pretrain-variant"],
)
def test_wrong_architecture_is_a_checkpoint_error(config: EATConfig) -> None:
    stored = load_file(str(TINY / "model.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit"):
        EATModel(config).load_checkpoint(stored)


def test_bad_checkpoint_locations(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        EATModel.from_pretrained(tmp_path / "missing")
    (tmp_path / "config.json").write_text((TINY / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"lacks model\.safetensors"):
        EATModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        EATModel.from_pretrained(tmp_path)


def test_hub_id_uses_hf_hub_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    asked: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str) -> str:
        asked.append((repo_id, filename))
        return str(TINY / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    model = EATModel.from_pretrained("someone/EAT-tiny")
    assert asked == [("someone/EAT-tiny", "config.json"), ("someone/EAT-tiny", "model.safetensors")]
    assert model.config.depth == 2


def test_hub_failure_gives_offline_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def failing_download(repo_id: str, filename: str) -> str:
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing_download)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        EATEmbedder("someone/EAT-tiny", device="cpu")


# -- the reference vectors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["patch_embed", "layer_0", "layer_1", "layer_2", "features", "logits"]
)
def test_reproduces_reference_from_mel(
    tiny_model: EATModel, io: dict[str, np.ndarray], key: str
) -> None:
    mel = torch.from_numpy(io["mel"])
    with torch.no_grad():
        states = tiny_model.hidden_states(mel)
        outputs = {
            "patch_embed": tiny_model.patch_embed(mel),
            "layer_0": tiny_model.embed_tokens(mel),
            "layer_1": states[0],
            "layer_2": states[1],
            "features": tiny_model.extract_features(mel),
            "logits": tiny_model(mel),
        }
    assert_close(outputs[key], io[key], atol=1e-5)


def test_reproduces_reference_from_waveform(
    tiny_model: EATModel, preproc: dict[str, np.ndarray]
) -> None:
    """Raw fbank relative to its magnitude; model input and features at 1e-4 of theirs."""
    extractor = EATFeatureExtractor(target_length=64)
    waveform = torch.from_numpy(preproc["waveform"])
    with torch.no_grad():
        mel = extractor(waveform.unsqueeze(0))
        assert_log_energies_close(extractor.fbank(waveform), preproc["fbank"], what="fbank")
        assert_scaled_close(mel, preproc["mel"], 1e-4, "normalised mel")
        assert_scaled_close(tiny_model.extract_features(mel), preproc["features"], 1e-4, "features")
        assert_scaled_close(tiny_model(mel), preproc["logits"], 1e-4, "logits")


def _kaldi(waveform: torch.Tensor, **changes: object) -> torch.Tensor:
    from torchaudio.compliance import kaldi

    settings: dict[str, object] = dict(
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    settings.update(changes)
    return kaldi.fbank((waveform - waveform.mean()).unsqueeze(0), **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mistake",
    [
        {"window_type": "hamming"},
        {"window_type": "povey"},
        {"preemphasis_coefficient": 0.0},  # pre-emphasis missing
        {"preemphasis_coefficient": 0.96},
        {"low_freq": 50.0},
        {"remove_dc_offset": False},
    ],
    ids=str,
)
def test_fbank_tolerance_still_catches_typical_mistakes(
    preproc: dict[str, np.ndarray], mistake: dict[str, object]
) -> None:
    waveform = torch.from_numpy(preproc["waveform"])
    assert log_energy_violations(_kaldi(waveform), preproc["fbank"]) == 0
    assert log_energy_violations(_kaldi(waveform, **mistake), preproc["fbank"]) > 0


@pytest.mark.parametrize("mean, std", [(-4.27, 4.569), (-4.268, 4.6), (-4.268, 4.569 / 2)])
def test_mel_tolerance_catches_wrong_normalisation_constants(
    preproc: dict[str, np.ndarray], mean: float, std: float
) -> None:
    fbank = torch.from_numpy(preproc["fbank"])
    wrong = (fbank - mean) / (2.0 * std)
    right = (fbank - EATFeatureExtractor.mean) / (2.0 * EATFeatureExtractor.std)
    assert_scaled_close(right, preproc["mel"][0, 0, :63], 1e-4, "mel")
    with pytest.raises(AssertionError):
        assert_scaled_close(wrong, preproc["mel"][0, 0, :63], 1e-4, "mel")


def test_positional_table_formula(tiny_model: EATModel) -> None:
    assert tiny_model.fixed_positional_encoder is not None
    stored = tiny_model.fixed_positional_encoder.positions
    assert torch.allclose(sincos_positions(64, 16, 8), stored, atol=1e-6, rtol=0)


def test_base_model_matches_schema() -> None:
    schema = json.loads((DATA / "eat_base_schema.json").read_text())
    config = EATConfig.from_dict(schema["config"])
    assert config == EATConfig()  # the defaults are EAT-base
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = EATModel(config)
    own = {"model." + k: v for k, v in model.state_dict().items()}
    expected = {e["key"]: (tuple(e["shape"]), e["dtype"]) for e in schema["state_dict"]}
    assert len(own) == schema["num_tensors"] == len(expected)
    assert {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in own.items()} == (
        expected
    )
    assert sum(v.numel() for v in own.values()) == schema["num_parameters"]


# -- preprocessing -----------------------------------------------------------------------


def test_feature_extractor_pads_before_normalising() -> None:
    extractor = EATFeatureExtractor(target_length=1024)
    mel = extractor(torch.zeros(1, 16000) + 0.01 * torch.randn(1, 16000))
    assert mel.shape == (1, 1, 1024, 128)
    assert torch.allclose(mel[0, 0, 98:], torch.full((926, 128), 4.268 / (2 * 4.569)))
    cut = extractor(torch.randn(1, 16000 * 12) * 0.1)
    assert cut.shape == (1, 1, 1024, 128)


def test_feature_extractor_natural_length() -> None:
    extractor = EATFeatureExtractor(target_length=None)
    assert extractor.frames_for(8 * 16000) == 800  # 798 frames, rounded up to 16
    assert extractor(torch.randn(2, 8 * 16000) * 0.1).shape == (2, 1, 800, 128)


@pytest.mark.parametrize("length", [0, 100, -16])
def test_feature_extractor_validates_length(length: int) -> None:
    with pytest.raises(InvalidInputError, match="target_length"):
        EATFeatureExtractor(target_length=length)


# -- the embedder ------------------------------------------------------------------------


def test_embedder_attributes(tiny_embedder: EATEmbedder) -> None:
    assert (tiny_embedder.name, tiny_embedder.dim, tiny_embedder.num_layers) == ("EAT", 64, 2)
    assert tiny_embedder.checkpoint == str(TINY)


def test_embed_is_mean_of_frame_tokens(
    tiny_embedder: EATEmbedder, preproc: dict[str, np.ndarray]
) -> None:
    vector = tiny_embedder.embed(preproc["waveform"], sample_rate=16000)
    # 63 fbank frames padded to 64: 3 whole time patches of the input's own (× 8 frequency
    # patches); the fourth is mostly padding and is not a frame.
    expected = preproc["features"][:, 1 : 1 + 3 * 8].mean(axis=1)
    assert vector.shape == (1, 64)
    assert_scaled_close(vector, expected, 1e-4, "mean of frame tokens")


def test_cls_pooling(preproc: dict[str, np.ndarray]) -> None:
    embedder = EATEmbedder(TINY, device="cpu", target_length=64, pooling="cls")
    vector = embedder.embed(preproc["waveform"])
    assert_scaled_close(vector, preproc["features"][:, 0], 1e-4, "CLS token")


def test_natural_length_equals_padding_to_it(preproc: dict[str, np.ndarray]) -> None:
    natural = EATEmbedder(TINY, device="cpu", target_length=None)
    padded = EATEmbedder(TINY, device="cpu", target_length=64)
    wave = preproc["waveform"]  # 63 frames -> 64
    assert torch.equal(natural.embed(wave), padded.embed(wave))


def test_hidden_states_and_early_stop(tiny_embedder: EATEmbedder) -> None:
    waves = torch.randn(3, 12000) * 0.1
    states = tiny_embedder.hidden_states(waves)
    assert [tuple(s.shape) for s in states] == [(3, 33, 64)] * 2
    with torch.no_grad():
        mel = tiny_embedder.feature_extractor(waves)
        expected = tiny_embedder.model.hidden_states(mel)
    for got, want in zip(states, expected, strict=True):
        assert torch.equal(got, want)

    calls: list[int] = []
    hook = tiny_embedder.model.blocks[1].register_forward_hook(lambda *_: calls.append(1))
    try:
        assert len(tiny_embedder.hidden_states(waves, num_layers=1)) == 1
        assert calls == []
    finally:
        hook.remove()


def test_multilayer_slices_are_pooled_blocks(tiny_embedder: EATEmbedder) -> None:
    waves = torch.randn(2, 16000) * 0.1
    multi = MultiLayerEmbedder(tiny_embedder, layers="all")
    assert (multi.name, multi.dim) == ("EAT_ML", 128)
    vectors = multi.embed(waves)
    states = tiny_embedder.hidden_states(waves)
    for i, state in enumerate(states):  # 98 frames cut to 64: 4 time patches × 8 frequency
        torch.testing.assert_close(vectors[:, 64 * i : 64 * (i + 1)], state[:, 1:].mean(dim=1))
    torch.testing.assert_close(vectors[:, 64:], tiny_embedder.embed(waves))


def test_cache_id_follows_pooling_and_length() -> None:
    ids = {
        EATEmbedder(TINY, device="cpu", **kwargs).cache_id()  # type: ignore[arg-type]
        for kwargs in (
            {},
            {"pooling": "cls"},
            {"target_length": None},
            {"target_length": 64},
        )
    }
    assert len(ids) == 4


def test_invalid_pooling() -> None:
    with pytest.raises(InvalidInputError, match="pooling"):
        EATEmbedder(TINY, device="cpu", pooling="max")  # type: ignore[arg-type]


def test_from_config_is_reproducible() -> None:
    config = EATConfig(depth=2, embed_dim=32, num_heads=2, max_length=8, num_classes=3)
    a = EATEmbedder.from_config(config, seed=1, device="cpu", target_length=None)
    b = EATEmbedder.from_config(config, seed=1, device="cpu", target_length=None)
    waves = torch.randn(2, 8000) * 0.1
    assert torch.equal(a.embed(waves), b.embed(waves))
    assert a.checkpoint is None and a.dim == 32


def test_too_long_input_is_refused() -> None:
    config = EATConfig(depth=1, embed_dim=32, num_heads=2, max_length=4, num_classes=3)
    embedder = EATEmbedder.from_config(config, device="cpu", target_length=None)
    with pytest.raises(InvalidInputError, match="at most 64 frames"):
        embedder.embed(torch.randn(1, 16000) * 0.1)
