"""Decoding: formats, durations, frequencies, streaming and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SR, tone, video_with_tracks, write_media

from audio_embed import (
    AudioDecodeError,
    AudioFileNotFoundError,
    CorruptAudioError,
    EmptyAudioError,
    InvalidInputError,
    NoAudioStreamError,
    describe_audio_streams,
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


def _pcm_wav(path: Path, rate: int, n: int) -> Path:
    """A 16-bit mono WAV of ``n`` samples (a loud tone) at ``rate``, by the standard library
    (which writes any rate, as a damaged or hand-made header may hold)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(np.arange(1, n + 1)) * 10000).astype("<i2").tobytes())
    return path


@pytest.mark.parametrize("n", [16, 100])
def test_an_absurdly_low_sample_rate_is_named(tmp_path: Path, n: int) -> None:
    """A WAV at 1 Hz: with 16 samples "the audio stream holds no samples" (FFmpeg's
    resampler gave nothing), with 100 a silent 1.6 million samples, each one upsampled
    16000-fold. Now the rate is named, with what to do."""
    path = _pcm_wav(tmp_path / "one-hertz.wav", 1, n)
    reason = r"one-hertz\.wav: its sample rate is 1 Hz, below the lowest read \(100 Hz.*asetrate"
    with pytest.raises(CorruptAudioError, match=reason):
        load_audio(path)
    with pytest.raises(CorruptAudioError, match=reason):
        list(stream_audio(path))
    with pytest.raises(CorruptAudioError, match="is 99 Hz"):
        load_audio(_pcm_wav(tmp_path / "99.wav", 99, 500))
    # the lowest read, and a real low-rate recording (a heart or whale recorder's 500 Hz;
    # review: a 1000 Hz floor refused it as corrupt)
    assert len(load_audio(_pcm_wav(tmp_path / "100.wav", 100, 500))) == 5 * SR
    assert len(load_audio(_pcm_wav(tmp_path / "500.wav", 500, 500))) == SR


def test_a_file_of_too_few_samples_to_resample_says_so(tmp_path: Path) -> None:
    """Ten samples at 44.1 kHz: FFmpeg's resampler gives none (it needs a few dozen), which
    read "holds no samples"; the same file at the rate asked for decodes."""
    with pytest.raises(EmptyAudioError, match=r"holds only 10 sample\(s\) at 44100 Hz .*too few"):
        load_audio(_pcm_wav(tmp_path / "tiny.wav", 44100, 10))
    assert len(load_audio(_pcm_wav(tmp_path / "tiny16k.wav", SR, 10))) == 10


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


def test_a_folder_is_named_a_folder(tmp_path: Path) -> None:
    """``Scanner.scan("recordings/")`` said "not a regular file"; now what to use for
    a folder's files."""
    from audio_embed import Markers, Recording, Scanner

    (tmp_path / "recordings").mkdir()
    with pytest.raises(AudioFileNotFoundError, match=r"recordings: a folder.*scan_to_folder"):
        load_audio(tmp_path / "recordings")
    with pytest.raises(AudioFileNotFoundError, match=r"a folder, not an audio or video file"):
        Scanner.from_name("LOGMEL").sliding_embeddings(tmp_path / "recordings")
    with pytest.raises(AudioFileNotFoundError, match=r"recordings: a folder, not a recording"):
        Scanner.from_name("LOGMEL").fit([Recording(tmp_path / "recordings", Markers([3.0]))])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_a_missing_file_names_the_file_beside_it_that_differs_by_its_extension(
    tmp_path: Path,
) -> None:
    """A markers or labels table naming ``rec`` or ``rec.wav`` for ``rec.mp4`` (before:
    "no such file" alone, with the recording beside it)."""
    from audio_embed import Markers, Recording, Scanner

    (tmp_path / "rec.mp4").write_bytes(b"x")
    (tmp_path / "rec.txt").write_text("labels, not media")
    with pytest.raises(AudioFileNotFoundError, match=r"file \(did you mean 'rec.mp4'\?\)$"):
        load_audio(tmp_path / "rec")
    with pytest.raises(AudioFileNotFoundError, match=r"did you mean 'rec.mp4'"):
        load_audio(tmp_path / "REC.wav")
    with pytest.raises(AudioFileNotFoundError, match=r"training recordings are missing: .*rec "
                       r"\(did you mean 'rec.mp4'\?\)"):  # fmt: skip
        Scanner.from_name("LOGMEL").fit([Recording(tmp_path / "rec", Markers([3.0]))])
    with pytest.raises(AudioFileNotFoundError, match=r"no such file$"):
        load_audio(tmp_path / "other.wav")


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
    path = video_with_tracks(tmp_path / "silent.mp4", [], seconds=1.0)
    with pytest.raises(NoAudioStreamError, match="no audio stream"):
        load_audio(path)


def test_errors_share_one_base(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError):
        load_audio(tmp_path / "missing.flac")


def test_resample_keeps_pitch() -> None:
    x = tone(500.0, 1.0, 48000)
    y = resample(x, 48000, SR)
    assert len(y) == SR and dominant_frequency(y) == pytest.approx(500.0, abs=2.0)


def _onset(audio: np.ndarray) -> float:
    return float(np.argmax(np.abs(audio) > 0.15)) / SR


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_video_whose_sound_starts_late_keeps_the_players_clock(tmp_path: Path, ext: str) -> None:
    # a beep 0.5 s into a sound that starts 1.5 s after the picture: a player shows it at 2 s
    track = np.zeros(SR * 2, np.float32)
    track[SR // 2 : SR // 2 + 1600] = tone(1000.0, 0.1, amp=0.5)
    path = video_with_tracks(tmp_path / f"late{ext}", [track], audio_start=1.5)
    audio = load_audio(path)
    assert _onset(audio) == pytest.approx(2.0, abs=0.08)  # not 0.5: times follow the video
    assert np.array_equal(np.concatenate(list(stream_audio(path, block_seconds=0.7))), audio)
    on_time = load_audio(video_with_tracks(tmp_path / f"on_time{ext}", [track]))
    assert _onset(on_time) == pytest.approx(0.5, abs=0.08)


def test_several_audio_streams_use_the_first_with_a_warning_naming_the_choice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = np.zeros(SR, np.float32), tone(1000.0, 1.0, amp=0.5)
    meta = [{"language": "eng", "title": "Game"}, {"language": "fra", "title": "Mic"}]
    path = video_with_tracks(tmp_path / "two.mkv", [first, second], metadata=meta)
    with caplog.at_level("WARNING"):
        audio = load_audio(path)
    assert np.abs(audio).max() < 0.01  # the first stream, silent
    text = caplog.text
    assert "2 audio streams" in text and "audio_stream=N" in text and "--audio-stream" in text
    assert "0: eng 'Game'" in text and "1: fra 'Mic'" in text  # the streams, listed
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_audio(path, audio_stream=0)  # chosen: no warning
    assert "audio streams" not in caplog.text


@pytest.fixture
def two_tracks(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """An OBS-like video: track 0 a 500 Hz tone, track 1 a 1 kHz tone (both from 0 s)."""
    game, mic = tone(500.0, 2.0, amp=0.4), tone(1000.0, 2.0, amp=0.4)
    meta = [{"title": "Game"}, {"title": "Mic", "language": "eng"}]
    return video_with_tracks(tmp_path / "obs.mkv", [game, mic], metadata=meta), game, mic


def test_audio_stream_decodes_that_stream(two_tracks: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _game, _mic = two_tracks
    first, second = load_audio(path, audio_stream=0), load_audio(path, audio_stream=1)
    mid = slice(SR // 2, SR // 2 + SR)  # away from the codec's edges
    assert dominant_frequency(first[mid]) == pytest.approx(500.0, abs=5.0)
    assert dominant_frequency(second[mid]) == pytest.approx(1000.0, abs=5.0)
    streamed = list(stream_audio(path, block_seconds=0.7, audio_stream=1))
    assert np.array_equal(np.concatenate(streamed), second)
    assert np.array_equal(load_audio(path), first)  # the default is the first
    info = probe_audio(path, 1)
    assert (info.audio_stream, info.n_audio_streams) == (1, 2)


def test_an_audio_stream_the_file_lacks_is_a_clear_error(
    tmp_path: Path, two_tracks: tuple[Path, np.ndarray, np.ndarray], tone_file: Path
) -> None:
    path, _, _ = two_tracks
    for call in (
        lambda: load_audio(path, audio_stream=2),
        lambda: list(stream_audio(path, audio_stream=2)),
        lambda: probe_audio(path, 2),
    ):
        with pytest.raises(NoAudioStreamError) as err:
            call()
        message = str(err.value)
        assert "no audio stream 2" in message and "2 audio streams" in message
        assert "0: 'Game' (aac, 1 ch)" in message and "1: eng 'Mic' (aac, 1 ch)" in message
    with pytest.raises(NoAudioStreamError, match=r"has 1 audio stream: 0 \("):
        load_audio(tone_file, audio_stream=1)
    for bad in (-1, 1.0, "1", True, "all"):
        with pytest.raises(InvalidInputError, match="whole number >= 0"):
            load_audio(path, audio_stream=bad)  # type: ignore[arg-type]
    assert describe_audio_streams(path) == ["0: 'Game' (aac, 1 ch)", "1: eng 'Mic' (aac, 1 ch)"]


def test_mix_averages_every_stream_on_the_containers_clock(tmp_path: Path) -> None:
    # track 1 starts later in the file and ends sooner: it is silent outside its span
    game, mic = tone(500.0, 3.0, amp=0.4), tone(1000.0, 1.0, amp=0.4)
    path = video_with_tracks(tmp_path / "mix.mkv", [game, mic], audio_start=0.0, seconds=3.0)
    late = video_with_tracks(tmp_path / "late.mkv", [game, mic], audio_start=0.5, seconds=3.0)
    for p in (path, late):
        first, second = load_audio(p, audio_stream=0), load_audio(p, audio_stream=1)
        expected = np.zeros(max(len(first), len(second)), np.float32)
        expected[: len(first)] += first
        expected[: len(second)] += second
        mixed = load_audio(p, audio_stream="mix")
        np.testing.assert_allclose(mixed, expected / 2, atol=1e-6)
        streamed = np.concatenate(list(stream_audio(p, block_seconds=0.7, audio_stream="mix")))
        np.testing.assert_array_equal(streamed, mixed)
    assert _onset(load_audio(late, audio_stream="mix")) == pytest.approx(0.5, abs=0.08)
    assert probe_audio(path, "mix").audio_stream == "mix"


def test_mix_counts_a_stream_without_samples_as_silence(tmp_path: Path) -> None:
    game = tone(500.0, 2.0, amp=0.4)
    path = video_with_tracks(tmp_path / "mute.mkv", [game, np.zeros(0, np.float32)], seconds=2.0)
    with pytest.raises(EmptyAudioError, match="audio stream 1 holds no samples"):
        load_audio(path, audio_stream=1)
    np.testing.assert_allclose(
        load_audio(path, audio_stream="mix"), load_audio(path, audio_stream=0) / 2, atol=1e-6
    )
    silent = video_with_tracks(tmp_path / "silent.mkv", [np.zeros(0, np.float32)] * 2)
    with pytest.raises(EmptyAudioError, match="none of its 2 audio streams holds samples"):
        load_audio(silent, audio_stream="mix")


def test_mix_of_a_single_stream_is_that_stream(tone_file: Path) -> None:
    np.testing.assert_array_equal(load_audio(tone_file, audio_stream="mix"), load_audio(tone_file))
