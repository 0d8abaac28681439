"""Decoding: formats, durations, frequencies, streaming and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SR, tone, write_media

from audio_embed import (
    AudioDecodeError,
    AudioFileNotFoundError,
    CorruptAudioError,
    EmptyAudioError,
    NoAudioStreamError,
    load_audio,
    probe_audio,
    resample,
    stream_audio,
)

VIDEO = {".mp4", ".mkv", ".mov", ".webm"}


def dominant_frequency(x: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


@pytest.mark.parametrize(
    "ext", [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".mkv", ".mov", ".webm"]
)
def test_formats_decode_to_16k_mono_with_right_duration_and_pitch(tmp_path: Path, ext: str) -> None:
    src_sr = 44100
    path = write_media(tmp_path / f"a{ext}", tone(1000.0, 2.0, src_sr), src_sr, video=ext in VIDEO)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # within one codec frame (AAC keeps its 1024-sample priming delay)
    assert abs(len(audio) / SR - 2.0) <= 1024 / src_sr + 1e-3
    assert dominant_frequency(audio) == pytest.approx(1000.0, abs=2.0)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left = tone(440.0, 1.0)
    path = write_media(tmp_path / "s.wav", np.stack([left, -left]), SR)
    assert np.abs(load_audio(path)).max() < 1e-3  # opposite channels cancel exactly


def test_six_channels_are_averaged(tmp_path: Path) -> None:
    chans = np.zeros((6, SR), dtype=np.float32)
    chans[3] = tone(300.0, 1.0)  # the LFE channel, which FFmpeg's downmix would drop
    path = write_media(tmp_path / "six.wav", chans, SR)
    audio = load_audio(path)
    assert np.abs(audio).max() == pytest.approx(0.3 / 6, rel=0.02)
    assert probe_audio(path).channels == 6


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_sample_rates_are_resampled(tmp_path: Path, rate: int) -> None:
    path = write_media(tmp_path / f"r{rate}.wav", tone(600.0, 1.5, rate), rate)
    audio = load_audio(path)
    assert len(audio) == pytest.approx(1.5 * SR, abs=2)
    assert dominant_frequency(audio) == pytest.approx(600.0, abs=2.0)


def test_other_target_rate(tone_file: Path) -> None:
    assert len(load_audio(tone_file, sample_rate=8000)) == 3 * 8000


def test_stream_blocks_concatenate_to_whole_file(tone_file: Path) -> None:
    blocks = list(stream_audio(tone_file, block_seconds=0.7))
    assert [len(b) for b in blocks[:-1]] == [int(0.7 * SR)] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(tone_file))


def test_probe(tone_file: Path) -> None:
    info = probe_audio(tone_file)
    assert info.duration == pytest.approx(3.0)
    assert (info.sample_rate, info.channels, info.has_video) == (SR, 1, False)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        load_audio(tmp_path / "e.wav")


def test_text_file_named_wav(tmp_path: Path) -> None:
    (tmp_path / "t.wav").write_text("this is not audio\n" * 50)
    with pytest.raises(CorruptAudioError) as info:
        load_audio(tmp_path / "t.wav")
    assert "t.wav" in str(info.value)


def test_video_without_audio(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=5)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    with pytest.raises(NoAudioStreamError, match="no audio stream"):
        load_audio(path)


def test_errors_share_one_base(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError):
        load_audio(tmp_path / "missing.flac")


def test_resample_keeps_pitch() -> None:
    x = tone(500.0, 1.0, 48000)
    y = resample(x, 48000, SR)
    assert len(y) == SR and dominant_frequency(y) == pytest.approx(500.0, abs=2.0)
