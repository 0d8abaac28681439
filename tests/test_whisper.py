"""WhisperEmbedder on tiny random encoders, and the CTranslate2 model.bin reader."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from audio_embed import create_embedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.embedders.whisper import WhisperEmbedder
from audio_embed.embedders.whisper_ct2 import load_ctranslate2_encoder, read_model_bin
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import get_spec, list_embedders

SR = 16000
POSITIONS = 100  # a 2 s positional table keeps the tests fast


def tiny_config(layers: int = 4, positions: int = POSITIONS) -> WhisperConfig:
    return WhisperConfig(  # type: ignore[no-untyped-call]
        d_model=32,
        encoder_layers=layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        max_source_positions=positions,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    torch.manual_seed(0)
    return WhisperEncoder(tiny_config()).eval()


@pytest.fixture(scope="module")
def waves() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy((0.1 * rng.standard_normal((2, SR))).astype(np.float32))


def reference(encoder: WhisperEncoder, waves: torch.Tensor) -> list[torch.Tensor]:
    """transformers' own forward pass on the input padded to the table (30 s for real models)."""
    fe = WhisperFeatureExtractor(feature_size=80)  # type: ignore[no-untyped-call]
    n = POSITIONS * 320
    feats = fe(list(waves.numpy()), sampling_rate=SR, max_length=n, return_tensors="pt")
    with torch.inference_mode():
        out = encoder(feats["input_features"], output_hidden_states=True)
    return [out.last_hidden_state, *out.hidden_states[1:]]


def test_pad_mode_is_transformers_encoder(encoder: WhisperEncoder, waves: torch.Tensor) -> None:
    emb = WhisperEmbedder(model=encoder, device="cpu")
    assert (emb.dim, emb.num_layers, emb.sample_rate) == (32, 4, SR)
    last, *blocks = reference(encoder, waves)
    keep = waves.shape[1] // 320  # 1 s of input = 50 frames; the padding's are dropped
    states = emb.hidden_states(waves)
    assert len(states) == 4
    for mine, theirs in zip(states[:-1], blocks[:-1], strict=True):
        torch.testing.assert_close(mine, theirs[:, :keep], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(emb.embed(waves), last[:, :keep].mean(1), rtol=1e-4, atol=1e-4)


def test_cut_mode_uses_only_the_inputs_positions(
    encoder: WhisperEncoder, waves: torch.Tensor
) -> None:
    pad = WhisperEmbedder(model=encoder, device="cpu")
    cut = WhisperEmbedder(model=encoder, short_input="cut", device="cpu")
    a, b = pad.hidden_states(waves), cut.hidden_states(waves)
    assert a[0].shape == b[0].shape == (2, 50, 32)
    assert not torch.allclose(a[-1], b[-1], atol=1e-3)  # padding changes every frame's context
    full = torch.cat([waves, waves], dim=1)[:, : POSITIONS * 320]  # exactly the table
    torch.testing.assert_close(pad.embed(full), cut.embed(full), rtol=1e-4, atol=1e-4)


def test_inputs_longer_than_the_table_go_in_pieces(encoder: WhisperEncoder) -> None:
    emb = WhisperEmbedder(model=encoder, device="cpu")
    rng = np.random.default_rng(1)
    n = POSITIONS * 320
    long = torch.from_numpy((0.1 * rng.standard_normal((1, 2 * n + 3200))).astype(np.float32))
    states = emb.hidden_states(long, num_layers=2)
    assert states[1].shape == (1, (2 * n + 3200) // 320, 32)
    torch.testing.assert_close(
        states[1][:, POSITIONS : 2 * POSITIONS], emb.hidden_states(long[:, n : 2 * n], 2)[1]
    )


@pytest.mark.parametrize("short_input", ["pad", "cut"])
def test_shared_equals_per_window_without_context(
    encoder: WhisperEncoder, short_input: str
) -> None:
    emb = WhisperEmbedder(model=encoder, short_input=short_input, device="cpu")  # type: ignore[arg-type]
    emb.shared_chunk, emb.shared_context = 1.0, 0.0
    rng = np.random.default_rng(2)
    audio = (0.1 * rng.standard_normal(5 * SR)).astype(np.float32)
    starts = np.arange(0.0, 4.0, 1.0)
    for model in (emb, MultiLayerEmbedder(emb, layers=[2, 4])):
        shared = model.embed_windows(audio, starts, 1.0, encoding="shared")
        each = model.embed_windows(audio, starts, 1.0, encoding="per_window")
        np.testing.assert_allclose(shared, each, rtol=1e-4, atol=1e-4)


def test_shared_segments_fit_the_table(encoder: WhisperEncoder) -> None:
    emb = WhisperEmbedder(model=encoder, device="cpu")
    seen: list[int] = []
    frames = emb.encode_frames

    def spy(x: torch.Tensor, layers: tuple[int, ...] | None) -> list[torch.Tensor]:
        seen.append(x.shape[1])
        return frames(x, layers)

    emb.encode_frames = spy  # type: ignore[method-assign]
    audio = np.zeros(10 * SR, dtype=np.float32)
    emb.embed_windows(audio, np.arange(0.0, 9.0, 1.0), 1.0, encoding="shared")
    assert seen and max(seen) <= POSITIONS * 320


def test_bad_settings(encoder: WhisperEncoder) -> None:
    with pytest.raises(InvalidInputError, match="short_input"):
        WhisperEmbedder(model=encoder, short_input="trim")  # type: ignore[arg-type]
    fe = WhisperFeatureExtractor(feature_size=128)  # type: ignore[no-untyped-call]
    with pytest.raises(InvalidInputError, match="mel"):
        WhisperEmbedder(model=encoder, feature_extractor=fe)
    with pytest.raises(CheckpointError, match="WhisperEncoder"):
        WhisperEmbedder(model=torch.nn.Linear(2, 2))


def test_registry_names() -> None:
    names = list_embedders("WHISPER*")
    for base in ("TINY", "TINY_EN", "BASE", "SMALL", "MEDIUM_EN", "LARGE_V3"):
        assert f"WHISPER_{base}" in names and f"WHISPER_{base}_ML" in names
    spec = get_spec("WHISPER_LARGE_V3")
    assert (spec.dim, spec.num_layers, spec.license) == (1280, 32, "MIT")
    assert get_spec("WHISPER_TINY_EN_ML").layers == (1, 2, 3, 4)


def test_save_pretrained_directory(tmp_path: Path, waves: torch.Tensor) -> None:
    torch.manual_seed(3)
    model = WhisperModel(tiny_config(positions=1500)).eval()
    model.save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path)  # type: ignore[no-untyped-call]
    emb = WhisperEmbedder(tmp_path, name="WHISPER_TINY", device="cpu")
    direct = WhisperEmbedder(model=model, device="cpu")
    assert emb.name == "WHISPER_TINY" and emb.dim == 32 and emb.checkpoint == str(tmp_path)
    torch.testing.assert_close(emb.embed(waves), direct.embed(waves))


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="CTranslate2"):
        WhisperEmbedder(tmp_path / "nowhere")


def test_registry_takes_a_ctranslate2_checkpoint(
    tmp_path: Path, encoder: WhisperEncoder, waves: torch.Tensor
) -> None:
    write_model_bin(tmp_path / "model.bin", ct2_variables(encoder, "float32"))
    emb = create_embedder("WHISPER_TINY_EN", checkpoint=tmp_path, device="cpu")
    assert (emb.name, emb.dim, emb.checkpoint) == ("WHISPER_TINY_EN", 32, str(tmp_path))
    # tiny.en pools block 2 by default (measured, README "Real pretrained weights")
    assert emb.config()["settings"] == {"short_input": "pad", "layer": 2}
    torch.testing.assert_close(
        emb.embed(waves), WhisperEmbedder(model=encoder, layer=2).embed(waves)
    )


def test_layer_picks_the_block_the_embedding_pools(
    encoder: WhisperEncoder, waves: torch.Tensor
) -> None:
    emb = WhisperEmbedder(model=encoder, layer=2)
    (frames,) = emb.frame_states(waves, [2])
    torch.testing.assert_close(emb.embed(waves), frames.mean(dim=1))
    # the last block is the default, normalised as last_hidden_state
    assert WhisperEmbedder(model=encoder, layer=4).layer is None
    torch.testing.assert_close(
        WhisperEmbedder(model=encoder, layer=4).embed(waves),
        WhisperEmbedder(model=encoder).embed(waves),
    )
    with pytest.raises(InvalidInputError, match="layer"):
        WhisperEmbedder(model=encoder, layer=5)


def test_tiny_en_scanner_takes_its_measured_defaults(encoder: WhisperEncoder) -> None:
    from audio_embed.classifier import CalibratedClassifier
    from audio_embed.scanner import Scanner

    emb = create_embedder("WHISPER_TINY_EN", model=encoder, device="cpu")
    assert emb.layer == 2 and emb.scan_defaults().classifier == "logreg"
    steps = Scanner(emb).classifier.get_params()["estimator"].steps
    assert [name for name, _ in steps] == ["standardscaler", "logisticregression"]
    assert Scanner(emb, classifier=CalibratedClassifier()).classifier.estimator is None
    assert create_embedder("WHISPER_TINY_EN", model=encoder, layer=None).layer is None
    # sizes not measured keep the library's defaults and the last block
    other = create_embedder("WHISPER_TINY", model=encoder, device="cpu")
    assert other.layer is None and other.scan_defaults().as_dict() == {}


# --- CTranslate2 model.bin -------------------------------------------------------------


def write_model_bin(
    path: Path, variables: dict[str, np.ndarray], spec: str = "WhisperSpec"
) -> None:
    """What ctranslate2.specs.ModelSpec._serialize writes (format version 6)."""
    types = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = [struct.pack("<I", 6), string(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, value in variables.items():
        out += [string(name), struct.pack("<B", value.ndim)]
        out += [struct.pack("<I", d) for d in value.shape]
        out += [struct.pack("<B", types[value.dtype.name]), struct.pack("<I", value.nbytes)]
        out.append(value.tobytes())
    out.append(struct.pack("<I", 0))
    path.write_bytes(b"".join(out))


def ct2_variables(encoder: WhisperEncoder, dtype: str = "float16") -> dict[str, np.ndarray]:
    """The encoder's weights named and fused as CTranslate2's Whisper converter does."""
    sd = {k: v.numpy().astype(dtype) for k, v in encoder.state_dict().items()}
    out = {
        "encoder/conv1/weight": sd["conv1.weight"],
        "encoder/conv1/bias": sd["conv1.bias"],
        "encoder/conv2/weight": sd["conv2.weight"],
        "encoder/conv2/bias": sd["conv2.bias"],
        "encoder/position_encodings/encodings": sd["embed_positions.weight"],
        "encoder/layer_norm/gamma": sd["layer_norm.weight"],
        "encoder/layer_norm/beta": sd["layer_norm.bias"],
        "encoder/num_heads": np.array(encoder.config.encoder_attention_heads, dtype=np.int16),
        "decoder/embeddings/weight": np.zeros((4, 2), dtype=dtype),
    }
    for i in range(len(encoder.layers)):
        p, s = f"layers.{i}.", f"encoder/layer_{i}/"
        zeros = np.zeros_like(sd[p + "self_attn.q_proj.bias"])
        out[s + "self_attention/linear_0/weight"] = np.concatenate(
            [sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"]
        )
        out[s + "self_attention/linear_0/bias"] = np.concatenate(
            [sd[p + "self_attn.q_proj.bias"], zeros, sd[p + "self_attn.v_proj.bias"]]
        )
        for ct2, hf in (
            ("self_attention/linear_1", "self_attn.out_proj"),
            ("ffn/linear_0", "fc1"),
            ("ffn/linear_1", "fc2"),
        ):
            out[s + ct2 + "/weight"] = sd[p + hf + ".weight"]
            out[s + ct2 + "/bias"] = sd[p + hf + ".bias"]
        for ct2, hf in (("self_attention", "self_attn_layer_norm"), ("ffn", "final_layer_norm")):
            out[s + ct2 + "/layer_norm/gamma"] = sd[p + hf + ".weight"]
            out[s + ct2 + "/layer_norm/beta"] = sd[p + hf + ".bias"]
    return out


def test_ctranslate2_directory_round_trip(
    tmp_path: Path, encoder: WhisperEncoder, waves: torch.Tensor
) -> None:
    write_model_bin(tmp_path / "model.bin", ct2_variables(encoder, "float32"))
    loaded = load_ctranslate2_encoder(tmp_path)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    emb = WhisperEmbedder(tmp_path, device="cpu")
    torch.testing.assert_close(emb.embed(waves), WhisperEmbedder(model=encoder).embed(waves))


def test_ctranslate2_float16_and_spec_name(tmp_path: Path, encoder: WhisperEncoder) -> None:
    variables = ct2_variables(encoder)
    write_model_bin(tmp_path / "model.bin", variables)
    spec, read = read_model_bin(tmp_path / "model.bin", prefix="encoder/")
    assert spec == "WhisperSpec" and not any(k.startswith("decoder") for k in read)
    assert read["encoder/conv1/weight"].dtype == np.float16
    write_model_bin(tmp_path / "model.bin", variables, spec="TransformerSpec")
    with pytest.raises(CheckpointError, match="not a Whisper model"):
        load_ctranslate2_encoder(tmp_path)


@pytest.mark.parametrize("change", ["extra", "missing", "k_bias", "truncated"])
def test_ctranslate2_strict_key_check(tmp_path: Path, encoder: WhisperEncoder, change: str) -> None:
    variables = ct2_variables(encoder)
    if change == "extra":
        variables["encoder/layer_0/self_attention/rotary"] = np.zeros(2, dtype=np.float16)
    elif change == "missing":
        del variables["encoder/layer_1/ffn/linear_1/bias"]
    elif change == "k_bias":
        variables["encoder/layer_0/self_attention/linear_0/bias"][40:41] = 1.0
    write_model_bin(tmp_path / "model.bin", variables)
    if change == "truncated":
        data = (tmp_path / "model.bin").read_bytes()
        (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_ctranslate2_encoder(tmp_path)


@pytest.mark.parametrize(("short_input", "layer"), [("pad", None), ("cut", None), ("pad", 2)])
def test_contract_checks(encoder: WhisperEncoder, short_input: str, layer: int | None) -> None:
    from audio_embed.testing import check_embedder

    emb = WhisperEmbedder(model=encoder, short_input=short_input, layer=layer, device="cpu")  # type: ignore[arg-type]
    assert emb.embedding_layer == (layer or 4)
    ran = check_embedder(emb, seconds=1.5)
    assert "config" in ran and len(ran) >= 5
