"""BEATs: the native implementation against the reference vectors (random weights).

The vectors in ``tests/data/beats_tiny*`` were produced by the original
``microsoft/unilm`` code (see the vectors' README); nothing here downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numeric import assert_scaled_close

from audio_embed import CheckpointError, InvalidInputError, MultiLayerEmbedder, create_embedder
from audio_embed.embedders import beats
from audio_embed.embedders.beats import (
    BEATsConfig,
    BEATsEmbedder,
    BEATsFeatureExtractor,
    BEATsModel,
    forward_padding_mask,
    load_beats_checkpoint,
    relative_position_bucket,
)

DATA = Path(__file__).parent / "data"
TINY = DATA / "beats_tiny.pt"
VECTOR_FILES = ["beats_tiny_io.npz", "beats_tiny_io_padded.npz"]

# From the vectors' README: ~1e-5 from stored fbank / patch tokens, ~1e-4 from waveforms,
# relative to each array's magnitude (normalised fbank ~2.4, features ~4.5; see numeric.py).
ATOL_STORED = 1e-5
ATOL_WAVE = 1e-4
ARRAYS = ("layer_0", "layer_1", "layer_2", "features", "frame_logits", "lprobs")


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    """Max abs error at most ``atol`` times the array's magnitude (at least 1)."""
    assert_scaled_close(actual, expected, atol, what)


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, Any]:
    loaded = torch.load(TINY, map_location="cpu", weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def model() -> BEATsModel:
    return load_beats_checkpoint(TINY)


@pytest.fixture(scope="module")
def embedder(model: BEATsModel) -> BEATsEmbedder:
    return BEATsEmbedder(model=model, device="cpu")


@pytest.fixture(scope="module", params=VECTOR_FILES)
def vectors(request: pytest.FixtureRequest) -> dict[str, torch.Tensor]:
    with np.load(DATA / request.param) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


@pytest.fixture(scope="module")
def plain() -> dict[str, torch.Tensor]:
    with np.load(DATA / VECTOR_FILES[0]) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def frame_mask(v: dict[str, torch.Tensor]) -> torch.Tensor:
    return BEATsFeatureExtractor().frame_padding_mask(v["padding_mask"], v["fbank"].shape[1])


# ------------------------------------------------------------------ config and weights


def test_config_from_dict_reads_cfg_and_ignores_unknown_keys(checkpoint: dict[str, Any]) -> None:
    cfg = BEATsConfig.from_dict({**checkpoint["cfg"], "some_future_key": 1})
    assert cfg.encoder_layers == 2 and cfg.encoder_embed_dim == 64 and cfg.embed_dim == 32
    assert cfg.finetuned_model and cfg.predictor_class == 5
    assert BEATsConfig.from_dict(cfg.to_dict()) == cfg
    default = BEATsConfig()
    assert (default.encoder_layers, default.encoder_embed_dim, default.encoder_ffn_embed_dim) == (
        12,
        768,
        3072,
    )
    assert (default.encoder_attention_heads, default.embed_dim, default.input_patch_size) == (
        12,
        512,
        16,
    )
    assert default.deep_norm and default.gru_rel_pos and default.relative_position_embedding
    assert (
        default.num_buckets,
        default.max_distance,
        default.conv_pos,
        default.conv_pos_groups,
    ) == (
        320,
        800,
        128,
        16,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"encoder_attention_heads": 5},
        {"layer_norm_first": True},
        {"activation_fn": "glu"},
        {"encoder_layers": "many"},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        BEATsConfig.from_dict(bad)


def test_tiny_checkpoint_loads_strictly(checkpoint: dict[str, Any]) -> None:
    state = checkpoint["model"]
    fresh = BEATsModel(BEATsConfig.from_dict(checkpoint["cfg"]))
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    mine = fresh.state_dict()
    assert list(mine) == list(state)  # same keys, same order as the reference
    assert len(mine) == 52
    for key, value in state.items():
        assert torch.equal(mine[key], value), key
    # Layer 0's relative-position table is the one every layer uses and lists.
    first = fresh.encoder.layers[0].self_attn.relative_attention_bias
    assert fresh.encoder.layers[1].self_attn.relative_attention_bias is first


def test_base_schema_keys_and_shapes() -> None:
    schema = json.loads((DATA / "beats_base_schema.json").read_text())
    with torch.device("meta"):
        base = BEATsModel(BEATsConfig.from_dict(schema["cfg"]))
    got = [
        (k, list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in base.state_dict().items()
    ]
    want = [(e["key"], e["shape"], e["dtype"]) for e in schema["state_dict"]]
    assert got == want
    assert len(got) == schema["num_tensors"] == 252
    assert sum(p.numel() for p in base.parameters()) == schema["num_parameters_unique"]


# ------------------------------------------------------------------ numbers vs reference


def test_relative_position_buckets(plain: dict[str, torch.Tensor]) -> None:
    positions = torch.arange(144)
    buckets = relative_position_bucket(positions[None, :] - positions[:, None], 320, 800)
    assert torch.equal(buckets, plain["rel_pos_bucket"])


def test_fbank_from_waveform(vectors: dict[str, torch.Tensor]) -> None:
    fbank = BEATsFeatureExtractor()(vectors["waveform"])
    assert fbank.shape == vectors["fbank"].shape == (2, 298, 128)
    close(fbank, vectors["fbank"], ATOL_WAVE, "fbank")


def test_padding_mask_tokens(model: BEATsModel, vectors: dict[str, torch.Tensor]) -> None:
    _, token_mask = model.patch_tokens(vectors["fbank"], frame_mask(vectors))
    assert token_mask is not None
    assert torch.equal(token_mask, vectors["padding_mask_tokens"])
    # The two-step reduction, spelled out: samples -> 298 frames -> 144 tokens.
    frames = forward_padding_mask(vectors["padding_mask"], 298)
    assert torch.equal(forward_padding_mask(frames, 144), vectors["padding_mask_tokens"])


def test_from_stored_fbank(model: BEATsModel, vectors: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        tokens, _ = model.patch_tokens(vectors["fbank"])
        out = model.extract_features(vectors["fbank"], frame_mask(vectors))
    close(tokens, vectors["patch_tokens"], ATOL_STORED, "patch_tokens")
    assert out.frame_logits is not None and out.lprobs is not None
    got = {
        "layer_0": out.embeddings,  # the input to block 1
        "layer_1": out.hidden_states[0],  # element k - 1 = block k
        "layer_2": out.hidden_states[1],
        "features": out.features,
        "frame_logits": out.frame_logits,
        "lprobs": out.lprobs,
    }
    for name in ARRAYS:
        close(got[name], vectors[name], ATOL_STORED, name)


def test_from_stored_patch_tokens(model: BEATsModel, vectors: dict[str, torch.Tensor]) -> None:
    mask = vectors["padding_mask_tokens"]
    with torch.no_grad():
        features, blocks, first = model.encoder(
            vectors["patch_tokens"], mask if mask.any() else None, 2
        )
        states = [first, *blocks]
        frame_logits, lprobs = model.classify(features, mask)
    for k in range(3):
        close(states[k], vectors[f"layer_{k}"], ATOL_STORED, f"layer_{k}")
    close(features, vectors["features"], ATOL_STORED, "features")
    close(frame_logits, vectors["frame_logits"], ATOL_STORED, "frame_logits")
    close(lprobs, vectors["lprobs"], ATOL_STORED, "lprobs")


def test_from_waveform(model: BEATsModel, vectors: dict[str, torch.Tensor]) -> None:
    extractor = BEATsFeatureExtractor()
    with torch.no_grad():
        fbank = extractor(vectors["waveform"])
        mask = extractor.frame_padding_mask(vectors["padding_mask"], fbank.shape[1])
        tokens, _ = model.patch_tokens(fbank)
        out = model.extract_features(fbank, mask)
    close(tokens, vectors["patch_tokens"], ATOL_WAVE, "patch_tokens")
    assert out.padding_mask is not None
    assert torch.equal(out.padding_mask, vectors["padding_mask_tokens"])
    assert out.frame_logits is not None and out.lprobs is not None
    got = dict(
        zip(
            ARRAYS,
            [out.embeddings, *out.hidden_states, out.features, out.frame_logits, out.lprobs],
            strict=True,
        )
    )
    for name in ARRAYS:
        close(got[name], vectors[name], ATOL_WAVE, name)


def test_no_mask_equals_all_false_mask(model: BEATsModel, plain: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        a = model.extract_features(plain["fbank"])
        b = model.extract_features(plain["fbank"], frame_mask(plain))
    assert torch.allclose(a.features, b.features, atol=1e-6)


# ------------------------------------------------------------------ embedder


def test_embedder_attributes(embedder: BEATsEmbedder) -> None:
    assert embedder.name == "BEATS"
    assert (embedder.dim, embedder.num_layers, embedder.sample_rate) == (64, 2, 16000)
    assert embedder.min_samples == 2800  # one 16-frame patch row


def test_embed_is_mean_of_features(embedder: BEATsEmbedder, plain: dict[str, torch.Tensor]) -> None:
    vectors = embedder.embed(plain["waveform"], sample_rate=16000)
    assert vectors.shape == (2, 64) and vectors.dtype == torch.float32
    close(vectors, plain["features"].mean(dim=1), ATOL_WAVE, "embedding")
    # numpy input, one waveform at a time, gives the same vectors
    single = embedder.embed(plain["waveform"][1].numpy())
    close(single[0], vectors[1], 1e-5, "single embedding")


def test_hidden_states(embedder: BEATsEmbedder, plain: dict[str, torch.Tensor]) -> None:
    states = embedder.hidden_states(plain["waveform"])
    assert len(states) == 2
    for k, state in enumerate(states, start=1):
        assert state.shape == (2, 144, 64)
        close(state, plain[f"layer_{k}"], ATOL_WAVE, f"layer_{k}")
    first = embedder.hidden_states(plain["waveform"], num_layers=1)
    assert len(first) == 1
    close(first[0], states[0], 1e-6, "layer_1 alone")
    with pytest.raises(InvalidInputError):
        embedder.hidden_states(plain["waveform"], num_layers=3)


def test_hidden_states_stop_early(embedder: BEATsEmbedder, plain: dict[str, torch.Tensor]) -> None:
    calls: list[int] = []
    hooks = [
        layer.register_forward_hook(lambda *_args, i=i: calls.append(i))
        for i, layer in enumerate(embedder.model.encoder.layers)
    ]
    try:
        embedder.hidden_states(plain["waveform"][:, :16000], num_layers=1)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [0]


def test_multilayer_slices_are_pooled_layers(
    embedder: BEATsEmbedder, plain: dict[str, torch.Tensor]
) -> None:
    multi = MultiLayerEmbedder(embedder, layers=[1, 2])
    assert multi.dim == 128 and multi.name == "BEATS_ML"
    out = multi.embed(plain["waveform"])
    states = embedder.hidden_states(plain["waveform"])
    close(out[:, :64], states[0].mean(dim=1), 1e-6, "layer 1 slice")
    close(out[:, 64:], states[1].mean(dim=1), 1e-6, "layer 2 slice")
    close(out[:, 64:], embedder.embed(plain["waveform"]), 1e-6, "last slice = embed")


def test_short_input_is_padded(embedder: BEATsEmbedder) -> None:
    out = embedder.embed(np.zeros(1000, dtype=np.float32))
    assert out.shape == (1, 64) and bool(torch.isfinite(out).all())


def test_from_config_is_reproducible(checkpoint: dict[str, Any]) -> None:
    a = BEATsEmbedder.from_config(checkpoint["cfg"], seed=3, device="cpu")
    b = BEATsEmbedder.from_config(checkpoint["cfg"], seed=3, device="cpu")
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.equal(a.embed(wave), b.embed(wave))
    assert a.dim == 64 and a.num_layers == 2
    c = BEATsEmbedder.from_config(checkpoint["cfg"], seed=4, device="cpu")
    assert a.cache_id() == b.cache_id() != c.cache_id()
    assert a.cache_id().startswith("BEATS:64:")


# ------------------------------------------------------------------ loading and errors


def test_checkpoint_path_and_bare_state_dict(
    tmp_path: Path, checkpoint: dict[str, Any], plain: dict[str, torch.Tensor]
) -> None:
    emb = BEATsEmbedder(str(TINY), device="cpu")
    close(emb.embed(plain["waveform"]), plain["features"].mean(dim=1), ATOL_WAVE, "embedding")
    # A bare state dict gets the default (iter3+) cfg: the tiny weights do not fit it.
    bare = tmp_path / "bare.pt"
    torch.save(checkpoint["model"], bare)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_beats_checkpoint(bare)


def test_url_checkpoint_is_cached_in_torch_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []

    def fake_download(url: str, dst: str, progress: bool = True) -> None:
        fetched.append(url)
        Path(dst).write_bytes(TINY.read_bytes())

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    url = "https://example.invalid/models/beats_tiny.pt?sig=abc"
    for _ in range(2):
        model = load_beats_checkpoint(url)
        assert model.cfg.encoder_layers == 2
    assert fetched == [url]  # downloaded once, then read from the cache
    assert (tmp_path / "hub" / "checkpoints" / "beats_tiny.pt").is_file()


def test_wrong_architecture_raises(tmp_path: Path, checkpoint: dict[str, Any]) -> None:
    deeper = tmp_path / "deeper.pt"
    torch.save(
        {"cfg": {**checkpoint["cfg"], "encoder_layers": 3}, "model": checkpoint["model"]}, deeper
    )
    with pytest.raises(CheckpointError, match="missing keys"):
        BEATsEmbedder(deeper, device="cpu")

    wider = tmp_path / "wider.pt"
    torch.save(
        {"cfg": {**checkpoint["cfg"], "encoder_ffn_embed_dim": 256}, "model": checkpoint["model"]},
        wider,
    )
    with pytest.raises(CheckpointError, match="wrong shape"):
        BEATsEmbedder(wider, device="cpu")

    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_beats_checkpoint(other)

    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], not_dict)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_beats_checkpoint(not_dict)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_beats_checkpoint(garbage)

    bad_cfg = tmp_path / "bad_cfg.pt"
    torch.save({"cfg": {**checkpoint["cfg"], "encoder_attention_heads": 7}, "model": {}}, bad_cfg)
    with pytest.raises(CheckpointError, match="encoder_attention_heads"):
        load_beats_checkpoint(bad_cfg)


def test_missing_checkpoint_explains_where_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        BEATsEmbedder(tmp_path / "nope.pt")
    monkeypatch.setattr(
        beats, "default_checkpoint_path", lambda: tmp_path / "BEATs_iter3_plus_AS2M.pt"
    )
    with pytest.raises(CheckpointError, match=r"microsoft/unilm.*checkpoint="):
        BEATsEmbedder()
    with pytest.raises(CheckpointError):
        create_embedder("BEATS")


def test_checkpoint_and_model_are_exclusive(model: BEATsModel) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        BEATsEmbedder(TINY, model=model)
