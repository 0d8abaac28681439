"""LOGMEL's PCEN front end (``frontend="pcen"`` / ``"log+pcen"``): what a window's vector
depends on (the window and up to ``PCEN_LEAD_IN`` seconds before it), whatever the
encoding, the other windows or where a streamed block begins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audio_embed import LogMelEmbedder, Scanner, create_embedder
from audio_embed.audio import load_audio
from audio_embed.demo import write_wav
from audio_embed.embedders.logmel import PCEN_LEAD_IN
from audio_embed.errors import InvalidInputError
from audio_embed.index import recording_zscore
from audio_embed.scanner import streaming
from audio_embed.windows import SlidingWindows

SR = 16000


def _audio(seconds: int, seed: int = 0) -> np.ndarray:
    """Noise whose level changes every second (PCEN's smoother has something to follow)."""
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.uniform(0.2, 2.0, seconds), SR)
    return (0.05 * rng.standard_normal(seconds * SR) * level).astype(np.float32)


def _by_definition(emb: LogMelEmbedder, audio: np.ndarray, start: float) -> np.ndarray:
    """One window's vector as documented: frames of the window's own 10 ms grid from
    PCEN_LEAD_IN seconds before it (fewer at the start of the audio), the statistics of
    the window's frames."""
    first = round(start * SR)
    back = 160 * min(round(PCEN_LEAD_IN * 100), first // 160)
    piece = np.zeros(back + SR, dtype=np.float32)
    got = audio[first - back : first + SR]
    piece[: len(got)] = got
    with torch.inference_mode():
        frames = emb.frames(torch.from_numpy(piece)[None])
    out: np.ndarray = emb.statistics(frames[:, back // 160 :]).numpy()[0]
    return out


@pytest.mark.parametrize("frontend", ["pcen", "log+pcen"])
@pytest.mark.parametrize("encoding", ["shared", "per_window"])
def test_a_window_depends_on_itself_and_its_lead_in_only(frontend: str, encoding: str) -> None:
    """The batched path (windows on the 10 ms grid) and the one-by-one path (off it)
    both give the documented vector, at the start of the audio (a shorter lead-in) and
    further in."""
    audio = _audio(12)
    emb = LogMelEmbedder(frontend=frontend)
    assert emb.dim == (512 if frontend == "log+pcen" else 256)
    on_grid = np.array([0.0, 0.5, 1.3, 2.0, 4.7, 9.0])
    off_grid = on_grid[1:] + 0.00021  # 3.4 samples: not a multiple of 160
    for starts in (on_grid, off_grid):
        got = emb.embed_windows(audio, starts, 1.0, encoding=encoding)  # type: ignore[arg-type]
        want = np.stack([_by_definition(emb, audio, s) for s in starts])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the same window embedded among others or alone: the same vector
    alone = emb.embed_windows(audio, on_grid[4:5], 1.0)
    np.testing.assert_allclose(alone[0], emb.embed_windows(audio, on_grid, 1.0)[4], atol=1e-5)
    # the audio more than PCEN_LEAD_IN before a window does not count ...
    changed = audio.copy()
    changed[: 2 * SR] *= 10
    at = np.array([4.7])
    np.testing.assert_allclose(
        emb.embed_windows(changed, at, 1.0), emb.embed_windows(audio, at, 1.0), atol=1e-5
    )
    # ... the lead-in does
    changed[3 * SR : 4 * SR] *= 10
    assert (
        np.abs(emb.embed_windows(changed, at, 1.0) - emb.embed_windows(audio, at, 1.0)).max() > 0.1
    )


def test_log_part_and_settings() -> None:
    """``log+pcen`` holds the log and the PCEN vectors (per statistic, the 64 log bands
    then the 64 PCEN bands); the default front end leaves the settings (every cache
    key, index and scanner made before) as they were."""
    audio = _audio(6, seed=1)
    starts = np.arange(0.0, 5.0, 0.5)
    both = LogMelEmbedder(frontend="log+pcen").embed_windows(audio, starts, 1.0)
    by_stat = both.reshape(len(starts), 4, 2, 64)  # mean, std, max, |delta|; log, pcen
    for part, frontend in enumerate(("log", "pcen")):
        alone = LogMelEmbedder(frontend=frontend).embed_windows(audio, starts, 1.0)
        np.testing.assert_allclose(by_stat[:, :, part].reshape(len(starts), -1), alone, atol=1e-6)
    assert "frontend" not in LogMelEmbedder().settings()
    assert LogMelEmbedder().lead_in == 0.0
    made = create_embedder("LOGMEL", frontend="log+pcen")
    assert isinstance(made, LogMelEmbedder) and made.settings()["frontend"] == "log+pcen"
    assert made.lead_in == PCEN_LEAD_IN
    ids = {LogMelEmbedder(frontend=f).cache_id() for f in ("log", "pcen", "log+pcen")}
    assert len(ids) == 3
    with pytest.raises(InvalidInputError, match="frontend must be one of log, pcen, log\\+pcen"):
        LogMelEmbedder(frontend="mfcc")


def test_a_streamed_scan_equals_the_whole_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streaming keeps the lead-in before every block's first window (Embedder.lead_in),
    so a file read in 7 s blocks gives the vectors of the whole array."""
    monkeypatch.setattr(streaming, "BLOCK_SECONDS", 7.0)
    audio = _audio(30, seed=2)
    path = tmp_path / "long.wav"
    write_wav(path, audio, SR)
    emb = LogMelEmbedder(frontend="log+pcen")
    entry = Scanner(emb, scan_windows=SlidingWindows(1.0, 0.1)).sliding_embeddings(path)
    whole = emb.embed_windows(load_audio(path, SR), entry.starts, 1.0)
    np.testing.assert_allclose(entry.embeddings, whole, atol=1e-5)


def test_pcen_hardly_depends_on_the_level() -> None:
    """Each band divided by its own smoothed energy (gain 0.98): a copy 30 dB quieter
    gives nearly the same features after the per-recording normalisation, where the
    log front end's default floor does not."""
    rng = np.random.default_rng(3)
    audio = 0.02 * rng.standard_normal(16 * SR)
    t = np.arange(SR // 2) / SR
    for k in range(1, 14, 4):
        audio[k * SR : k * SR + len(t)] += 0.3 * np.sin(2 * np.pi * (600 + 400 * t) * t)
    audio = audio.astype(np.float32)
    quiet = audio * np.float32(10 ** (-30 / 20))
    starts = np.arange(0.0, 15.0, 0.1)

    def spread(emb: LogMelEmbedder) -> float:
        a = recording_zscore(emb.embed_windows(audio, starts, 1.0))
        b = recording_zscore(emb.embed_windows(quiet, starts, 1.0))
        return float(np.abs(a - b).max())

    assert spread(LogMelEmbedder(frontend="pcen")) < 0.25
    assert spread(LogMelEmbedder()) > 1.0


def test_a_loud_passage_leaves_no_rounding_error_behind() -> None:
    """Windows long after a loud start: the smoother over the whole audio (float64, the
    first frame's energy decayed rather than subtracted and added again) gives each
    window's own vector (before: 13–26 % off at 1e-5 amplitude 26 s later)."""
    rng = np.random.default_rng(4)
    audio = np.concatenate([0.9 * rng.standard_normal(3 * SR), 1e-5 * rng.standard_normal(30 * SR)])
    audio = audio.astype(np.float32)
    emb = LogMelEmbedder(frontend="pcen")
    starts = np.array([3.5, 5.0, 12.0, 29.0])
    got = emb.embed_windows(audio, starts, 1.0)
    want = np.stack([_by_definition(emb, audio, s) for s in starts])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_streaming_is_exact_when_the_hop_does_not_divide_the_lead_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lead_in is a whole number of hops (441 samples: 73 hops, 2.012 s), so the
    streaming margin holds every window's whole lead-in."""
    monkeypatch.setattr(streaming, "BLOCK_SECONDS", 5.0)
    emb = LogMelEmbedder(frontend="pcen", hop_length=441)
    assert round(emb.lead_in * SR) == 73 * 441
    path = tmp_path / "rec.wav"
    write_wav(path, _audio(16, seed=5), SR)
    entry = Scanner(emb, scan_windows=SlidingWindows(1.0, 0.25)).sliding_embeddings(path)
    whole = emb.embed_windows(load_audio(path, SR), entry.starts, 1.0)
    np.testing.assert_allclose(entry.embeddings, whole, atol=1e-5)
