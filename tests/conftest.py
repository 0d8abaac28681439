"""Shared fixtures: synthetic audio files and a guard that no test touches the network."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

SR = 16000

#: CI runs the numeric tests a second time with one thread (and with
#: ATEN_CPU_CAPABILITY=default), so that a tolerance tuned to one machine fails in
#: CI instead of on a user's machine. ``.ci/run`` sets this variable.
THREADS_ENV = "AUDIO_EMBED_TEST_THREADS"


def pytest_configure(config: pytest.Config) -> None:
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def pytest_report_header(config: pytest.Config) -> str:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return f"torch {torch.__version__}: {torch.get_num_threads()} thread(s), ATen CPU {capability}"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a non-local connection (no downloads in tests)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and "/" not in host
        ):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_media(path: Path, audio: np.ndarray, sr: int, *, video: bool = False) -> Path:
    """Write mono or [channels, N] float audio with PyAV, codec chosen by extension."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    channels = audio.shape[0]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    ext = path.suffix.lower()
    codec, fmt = {
        ".wav": ("pcm_s16le", "s16"),
        ".flac": ("flac", "s16"),
        ".ogg": ("libopus", "flt"),
        ".mp3": ("libmp3lame", "fltp"),
        ".mp4": ("aac", "fltp"),
        ".m4a": ("aac", "fltp"),
        ".mkv": ("aac", "fltp"),
        ".mov": ("aac", "fltp"),
        ".webm": ("libopus", "flt"),
    }[ext]
    with av.open(str(path), "w") as out:
        if video:
            vs = out.add_stream("mpeg4" if ext != ".webm" else "libvpx", rate=5)
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        stream = out.add_stream(codec, rate=sr if codec != "libopus" else 48000, layout=layout)
        if codec == "libopus" and sr != 48000:  # opus runs at 48 kHz only
            from audio_embed.audio import resample

            audio = resample(audio, sr, 48000)
            sr = 48000
        frame_len = 1024
        pts = 0
        if fmt == "s16":
            data = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        else:
            data = audio
        for start in range(0, data.shape[1], frame_len):
            block = data[:, start : start + frame_len]
            if fmt in ("s16", "flt"):
                arr = np.ascontiguousarray(block.T.reshape(1, -1))
            else:
                arr = np.ascontiguousarray(block)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
            frame.sample_rate = sr
            frame.pts = pts
            pts += block.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if video:
            n_frames = max(1, int(data.shape[1] / sr * 5))
            for i in range(n_frames):
                img = np.full((32, 32, 3), (i * 7) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                for packet in vs.encode(vf):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
    return path


def video_with_tracks(
    path: Path,
    tracks: list[np.ndarray],
    *,
    audio_start: float = 0.0,
    seconds: float = 3.0,
    metadata: list[dict[str, str]] | None = None,
) -> Path:
    """A video (mpeg4 picture from 0 s) with one AAC stream per track (no track: no
    sound), each starting ``audio_start`` seconds in (its packets' timestamps say so),
    with ``metadata`` per stream (language, title) when given."""
    import fractions

    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=5)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        streams = [out.add_stream("aac", rate=SR, layout="mono") for _ in tracks]
        for stream, meta in zip(streams, metadata or [{} for _ in tracks], strict=True):
            stream.metadata.update(meta)
        for i in range(int(seconds * 5)):
            vf = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            vf.pts = i
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        offset = round(audio_start * SR)
        for stream, track in zip(streams, tracks, strict=True):
            for start in range(0, len(track), 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(track[None, start : start + 1024]),
                    format="fltp",
                    layout="mono",
                )
                frame.sample_rate = SR
                frame.pts = offset + start
                frame.time_base = fractions.Fraction(1, SR)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path


@pytest.fixture
def private_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An embedding cache of the test's own (``pytestmark = pytest.mark.usefixtures(
    "private_cache")``): nothing read from, or left in, the user's."""
    monkeypatch.setenv("AUDIO_EMBED_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tone_file(tmp_path: Path) -> Iterator[Path]:
    yield write_media(tmp_path / "tone.wav", tone(440.0, 3.0), SR)


def marks_beside(path: Path) -> Any:
    """The positive markers at the comma-separated times in the ``.txt`` beside ``path``."""
    from audio_embed.windows import Markers

    return Markers(positive=[float(v) for v in path.with_suffix(".txt").read_text().split(",")])


def fit_on_marks_beside(files: dict[str, Path], names: tuple[str, ...]) -> Any:
    """A LOGMEL scanner (threshold 0.5, no augmentation) fitted on ``files[name]`` for
    each name, marked by :func:`marks_beside`."""
    from audio_embed import LogMelEmbedder
    from audio_embed.scanner import Recording, Scanner

    scanner = Scanner(LogMelEmbedder(), threshold=0.5, augmentation=None)
    return scanner.fit([Recording(files[n], marks_beside(files[n])) for n in names])
