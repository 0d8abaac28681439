"""Embedder core, registry, torchaudio, multi-layer and log-mel embedders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SR, tone
from tiny_models import tiny_wav2vec2, tiny_wavlm

from audio_embed import (
    CheckpointError,
    Embedder,
    EmbedderSpec,
    InvalidInputError,
    LogMelEmbedder,
    MultiLayerEmbedder,
    TorchaudioEmbedder,
    UnknownEmbedderError,
    create_embedder,
    embed_dim,
    get_spec,
    list_embedders,
    register_embedder,
    registry,
)
from audio_embed.embedders.multilayer import resolve_layers
from audio_embed.registry import quartile_layers, setting_defaults

BUILTIN_DIMS = {
    "WAV2VEC2_BASE": 768,
    "WAV2VEC2_LARGE": 1024,
    "WAV2VEC2_LARGE_LV60K": 1024,
    "HUBERT_BASE": 768,
    "HUBERT_LARGE": 1024,
    "HUBERT_XLARGE": 1280,
    "WAVLM_BASE_PLUS": 768,
    "WAVLM_LARGE": 1024,
    "LOGMEL": 256,
    "WAV2VEC2_BASE_ML": 3072,
    "HUBERT_BASE_ML": 3072,
    "HUBERT_LARGE_ML": 4096,
    "HUBERT_XLARGE_ML": 5120,
    "WAVLM_LARGE_ML": 4096,
}


@pytest.fixture
def waves() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(3, SR, generator=g)


@pytest.mark.parametrize(("name", "dim"), BUILTIN_DIMS.items())
def test_builtin_dims(name: str, dim: int) -> None:
    assert embed_dim(name) == dim
    assert embed_dim(name.lower()) == dim


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownEmbedderError, match="Did you mean HUBERT_BASE") as info:
        embed_dim("HUBERT_BASS")
    assert "LOGMEL" in str(info.value)
    with pytest.raises(UnknownEmbedderError, match=r"its module is imported .*--plugin MODULE"):
        create_embedder("NOT_A_MODEL")  # e.g. --model ZERO_CROSSINGS without --plugin my_models
    with pytest.raises(UnknownEmbedderError):
        embed_dim("LOGMEL_ML")  # weight-free models have no layers, hence no _ML


def test_unknown_setting_names_the_settings_a_model_takes() -> None:
    """Before: a TypeError from the factory (or none, for a setting a lambda swallowed)."""
    with pytest.raises(InvalidInputError, match=r"no setting 'speed'; it takes: n_mels, n_fft"):
        create_embedder("LOGMEL", speed=2)
    # a built-in factory of **kwargs declares its class's settings (before: the class's
    # TypeError, as an InvalidInputError, "unexpected keyword argument 'speed'")
    with pytest.raises(InvalidInputError, match=r"WAV2VEC2_BASE.*no setting 'speed'; it takes: "):
        create_embedder("WAV2VEC2_BASE", speed=2)
    for name in ("WAV2VEC2_BASE", "WHISPER_TINY_EN_ML", "BEATS", "EAT"):
        with pytest.raises(InvalidInputError, match=f"{name} embedder has no setting 'speed'"):
            create_embedder(name, speed=2)
    with pytest.raises(InvalidInputError, match=r"it takes: layers, normalize_waveform\.$"):
        create_embedder("HUBERT_BASE_ML", speed=2)
    # a plugin's factory of **kwargs that declares nothing: its class's TypeError
    spec = EmbedderSpec(name="ANY", dim=256, factory=lambda **kw: LogMelEmbedder(**kw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._REGISTRY, "ANY", spec)
        with pytest.raises(InvalidInputError, match=r"ANY.*unexpected keyword.*'speed'"):
            create_embedder("ANY", speed=2)


def test_setting_defaults_are_the_factories_keywords() -> None:
    """What --model-option takes, with its defaults (audio-embed models --settings)."""
    assert setting_defaults("LOGMEL") == {
        "n_mels": 64, "n_fft": 512, "hop_length": 160, "f_min": 50.0, "f_max": 8000.0,
        "floor": 1e-4, "frontend": "log",
    }  # fmt: skip
    assert setting_defaults("BIRDNET_V24") == {
        "frames": "time", "chunk_hop": None, "batch_size": 16, "num_threads": None,
        "frame_pooling": "mean", "audio_speed": 1.0,
    }  # fmt: skip
    # a factory's own defaults (Whisper tiny.en: the measured block), and _ML's layers
    assert setting_defaults("WHISPER_TINY_EN") == {"short_input": "pad", "layer": 2}
    assert setting_defaults("WHISPER_TINY") == {"short_input": "pad", "layer": None}
    assert setting_defaults("HUBERT_BASE_ML") == {
        "layers": (3, 6, 9, 12), "normalize_waveform": None
    }  # fmt: skip
    assert setting_defaults("EAT") == {"pooling": "mean", "target_length": 1024}
    spec = EmbedderSpec(name="ANY", dim=256, factory=lambda **kw: LogMelEmbedder(**kw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._REGISTRY, "ANY", spec)
        assert setting_defaults("ANY") is None  # it does not say


def test_scanner_from_name_names_a_setting_of_the_model_or_a_close_one() -> None:
    """``Scanner.from_name("LOGMEL", floor=1e-10)`` (the README's advice for recordings
    at other levels, as Python) was ``TypeError: Scanner.__init__() got an unexpected
    keyword argument 'floor'``: the model's settings go in ``embedder_kwargs``."""
    from audio_embed import Scanner

    with pytest.raises(InvalidInputError) as info:
        Scanner.from_name("LOGMEL", floor=1e-10)
    assert "embedder_kwargs={'floor': 1e-10}" in str(info.value)
    with pytest.raises(InvalidInputError, match=r"'treshold'\. Did you mean 'threshold'"):
        Scanner.from_name("LOGMEL", treshold=0.5)
    with pytest.raises(InvalidInputError, match=r"Did you mean 'n_mels' \(the model's\)"):
        Scanner.from_name("LOGMEL", n_mel=32)
    with pytest.raises(InvalidInputError, match=r"scan_windows=SlidingWindows\(window, hop\)"):
        Scanner.from_name("LOGMEL", window=0.5, hop=0.1)
    # HuBERT's factory takes **kwargs but declares its settings (declare_settings)
    with pytest.raises(InvalidInputError, match=r"embedder_kwargs=\{'layers': \[3\]\}"):
        Scanner.from_name("HUBERT_BASE_ML", layers=[3])
    # a plugin's factory of **kwargs that declares nothing cannot say: the rule, not a claim
    spec = EmbedderSpec(name="ANY", dim=256, factory=lambda **kw: LogMelEmbedder(**kw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._REGISTRY, "ANY", spec)
        with pytest.raises(InvalidInputError, match=r"ANY model goes in embedder_kwargs"):
            Scanner.from_name("ANY", floor=1e-10)
    scanner = Scanner.from_name("LOGMEL", embedder_kwargs={"floor": 1e-10}, audio_stream=1)
    assert scanner.audio_stream == 1


def test_list_embedders_pattern() -> None:
    assert list_embedders("HUBERT_*_ML") == [
        "HUBERT_BASE_ML",
        "HUBERT_LARGE_ML",
        "HUBERT_XLARGE_ML",
    ]
    assert "LOGMEL" in list_embedders()


@pytest.mark.parametrize(
    ("n", "expected"), [(12, (3, 6, 9, 12)), (24, (6, 12, 18, 24)), (48, (12, 24, 36, 48))]
)
def test_quartiles(n: int, expected: tuple[int, ...]) -> None:
    assert quartile_layers(n) == expected
    # the same blocks as torchaudio list indices n//4-1, n//2-1, 3n//4-1, n-1
    assert [k - 1 for k in expected] == [n // 4 - 1, n // 2 - 1, 3 * n // 4 - 1, n - 1]


def test_resolve_layers_rules() -> None:
    assert resolve_layers("all", 4) == (1, 2, 3, 4)
    assert resolve_layers(2, 8) == (7, 8)
    assert resolve_layers([1, -1], 8) == (1, 8)
    with pytest.raises(InvalidInputError, match=r"blocks 1\.\.8"):
        resolve_layers([9], 8)


def test_torchaudio_embed_is_mean_of_model_output(waves: torch.Tensor) -> None:
    model = tiny_wav2vec2()
    emb = TorchaudioEmbedder("HUBERT_BASE", model=model, device="cpu")
    assert (emb.dim, emb.num_layers) == (32, 8)
    out = emb.embed(waves)
    with torch.inference_mode():
        ref = model(waves)[0].mean(dim=1)
    torch.testing.assert_close(out, ref)


def test_hidden_states_are_block_outputs_and_stop_early(waves: torch.Tensor) -> None:
    model = tiny_wav2vec2()
    emb = TorchaudioEmbedder("HUBERT_BASE", model=model, device="cpu")
    calls: list[int] = []
    for i, layer in enumerate(model.encoder.transformer.layers):
        layer.register_forward_hook(lambda *_a, i=i: calls.append(i))
    states = emb.hidden_states(waves, num_layers=3)
    assert len(states) == 3 and calls == [0, 1, 2]
    with torch.inference_mode():
        ref, _ = model.extract_features(waves)
    for got, want in zip(states, ref[:3], strict=True):
        torch.testing.assert_close(got, want)
    with pytest.raises(InvalidInputError, match=r"in \[1, 8\]"):
        emb.hidden_states(waves, num_layers=9)


@pytest.mark.parametrize("factory", [tiny_wav2vec2, tiny_wavlm])
def test_multilayer_slices_equal_pooled_blocks(waves: torch.Tensor, factory: object) -> None:
    model = factory()  # type: ignore[operator]
    base = TorchaudioEmbedder("HUBERT_BASE", model=model, device="cpu")
    ml = MultiLayerEmbedder(base)
    n = base.num_layers
    assert ml.layers == (n // 4, n // 2, 3 * n // 4, n)
    out = ml.embed(waves)
    assert out.shape == (3, 4 * base.dim) and ml.dim == 4 * base.dim
    with torch.inference_mode():
        blocks, _ = model.extract_features(waves)
    for k, layer in enumerate(ml.layers):
        torch.testing.assert_close(
            out[:, k * base.dim : (k + 1) * base.dim], blocks[layer - 1].mean(dim=1)
        )


def test_multilayer_runs_only_needed_blocks(waves: torch.Tensor) -> None:
    model = tiny_wav2vec2(layers=8)
    calls: list[int] = []
    for i, layer in enumerate(model.encoder.transformer.layers):
        layer.register_forward_hook(lambda *_a, i=i: calls.append(i))
    MultiLayerEmbedder(
        TorchaudioEmbedder("HUBERT_BASE", model=model, device="cpu"), layers=[2, 4]
    ).embed(waves)
    assert calls == [0, 1, 2, 3]


def test_multilayer_refuses_unlayered() -> None:
    with pytest.raises(InvalidInputError, match="no layers"):
        MultiLayerEmbedder(LogMelEmbedder())


def test_normalize_waveform_is_per_row(waves: torch.Tensor) -> None:
    emb = TorchaudioEmbedder(
        "HUBERT_LARGE",
        model=tiny_wav2vec2(layer_norm_first=True),
        normalize_waveform=True,
        device="cpu",
    )
    together = emb.embed(waves)
    alone = emb.embed(waves[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-4)
    scaled = emb.embed(waves * 3.0)  # per-utterance normalisation removes the gain
    torch.testing.assert_close(scaled, together, atol=1e-4, rtol=1e-3)


def test_cache_id_tells_weights_and_settings_apart() -> None:
    """The embedding cache must never hand one model's vectors to another."""

    def make(seed: int = 0, **kwargs: object) -> TorchaudioEmbedder:
        model = tiny_wav2vec2(layers=2, seed=seed)
        return TorchaudioEmbedder("HUBERT_BASE", model=model, device="cpu", **kwargs)  # type: ignore[arg-type]

    same, other_seed = make().cache_id(), make(seed=1).cache_id()
    assert same == make().cache_id() != other_seed
    assert same.startswith("HUBERT_BASE:32:")
    assert make(normalize_waveform=True).cache_id() != make(normalize_waveform=False).cache_id()
    tuned = make()
    with torch.no_grad():  # a fine-tuned copy: the last value of one weight matrix differs
        tuned.model.encoder.transformer.layers[1].feed_forward.output_dense.weight[-1, -1] += 0.5
    assert tuned.cache_id() != same
    assert LogMelEmbedder().cache_id() != LogMelEmbedder(n_mels=32).cache_id()
    ml = MultiLayerEmbedder(make(), layers=[1])
    assert ml.cache_id().startswith("HUBERT_BASE_ML:32:")
    assert ml.cache_id() != MultiLayerEmbedder(make(), layers=[2]).cache_id()
    assert ml.cache_id() != MultiLayerEmbedder(make(seed=1), layers=[1]).cache_id()


def test_local_checkpoint_loading(tmp_path: Path) -> None:
    import torchaudio

    bundle = torchaudio.pipelines.HUBERT_BASE
    params = dict(bundle._params)
    params.update(encoder_num_layers=1)  # tiny stand-in of the right family
    model = torchaudio.models.wav2vec2_model(**params)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="does not fit"):
        TorchaudioEmbedder("HUBERT_BASE", checkpoint=path, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        TorchaudioEmbedder("HUBERT_BASE", checkpoint=tmp_path / "missing.pth", device="cpu")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a loadable"):
        TorchaudioEmbedder("HUBERT_BASE", checkpoint=tmp_path / "junk.pth", device="cpu")


def test_bad_input_is_refused(waves: torch.Tensor) -> None:
    emb = LogMelEmbedder()
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        emb.embed(np.array([0.0, np.nan] * 800, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        emb.embed(np.array([0.0, np.inf] * 800, dtype=np.float32))
    with pytest.raises(InvalidInputError, match=r"\[batch, samples\]"):
        emb.embed(torch.zeros(2, 2, 1600))
    with pytest.raises(InvalidInputError, match=r"expects audio at 16000 Hz\. Got 44100"):
        emb.embed(waves, sample_rate=44100)
    with pytest.raises(InvalidInputError, match="empty"):
        emb.embed(np.zeros((1, 0), dtype=np.float32))


def test_int16_input_is_scaled() -> None:
    emb = LogMelEmbedder()
    # a noise floor, as recordings have: a pure tone's empty bands would hold only the
    # int16 copy's quantisation noise, which LOGMEL's small floor measures
    noise = 0.01 * np.random.default_rng(0).standard_normal(SR)
    x = (tone(440.0, 1.0) + noise).astype(np.float32)
    pcm = (x * 32768).astype(np.int16)
    torch.testing.assert_close(emb.embed(pcm), emb.embed(x), atol=2e-2, rtol=1e-2)


def test_logmel_is_deterministic_and_discriminative() -> None:
    emb = create_embedder("LOGMEL")
    assert isinstance(emb, LogMelEmbedder) and emb.dim == 256
    a = emb.embed(tone(300.0, 2.0))
    b = emb.embed(tone(3000.0, 2.0))
    torch.testing.assert_close(emb.embed(tone(300.0, 2.0)), a)
    assert a.shape == (1, 256) and not torch.allclose(a, b)
    # the band holding the tone is the loudest band on average
    assert int(a[0, :64].argmax()) < int(b[0, :64].argmax())


def test_short_input_is_padded() -> None:
    assert LogMelEmbedder().embed(np.zeros(10, dtype=np.float32)).shape == (1, 256)


class ZeroCrossingEmbedder(Embedder):
    """A third-party embedder defined the way a user would."""

    name = "ZERO_CROSSINGS"
    dim = 2

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        signs = torch.signbit(waveforms).float()
        rate = (signs[:, 1:] != signs[:, :-1]).float().mean(dim=1)
        return torch.stack([rate, waveforms.abs().mean(dim=1)], dim=1)


def test_user_defined_embedder_by_name() -> None:
    register_embedder(
        EmbedderSpec(name="zero_crossings", factory=ZeroCrossingEmbedder, dim=2), overwrite=True
    )
    assert "ZERO_CROSSINGS" in list_embedders()
    emb = create_embedder("ZERO_CROSSINGS")
    low, high = emb.embed(np.stack([tone(100.0, 1.0), tone(2000.0, 1.0)]))
    assert high[0] > low[0] * 10
    assert get_spec("zero_crossings").num_layers is None


def test_ml_names_cannot_be_registered() -> None:
    from audio_embed import AudioEmbedError

    with pytest.raises(AudioEmbedError, match="derived"):
        register_embedder(EmbedderSpec(name="FOO_ML", factory=ZeroCrossingEmbedder, dim=2))


def test_offline_without_weights_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert get_spec("HUBERT_BASE").available() is False
    with pytest.raises(CheckpointError, match="checkpoint="):
        create_embedder("HUBERT_BASE", device="cpu")
