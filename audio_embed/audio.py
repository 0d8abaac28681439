"""Decoding audio and video files to mono float32 at a fixed rate, with PyAV.

Everything FFmpeg reads works: wav, flac, ogg, mp3, m4a, and the audio track
of video containers (mp4, mkv, mov, webm…). Multi-channel audio is averaged
to mono; audio is resampled with FFmpeg's resampler to the rate asked for.
Times are the container's: when a video's sound starts after its picture, the
decoded audio begins with that much silence, so a time in the result is the
time a player shows. Of several audio streams the first is used (with a
warning).

:func:`stream_audio` yields fixed-size blocks so an hours-long file is decoded
once, block by block, and never held in memory twice; :func:`load_audio`
returns the whole file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from attrs import frozen

from audio_embed._media import (
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_media_file,
)
from audio_embed.errors import (
    AudioFileNotFoundError,
    CorruptAudioError,
    EmptyAudioError,
    InvalidInputError,
    NoAudioStreamError,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AudioInfo",
    "is_media_file",
    "load_audio",
    "probe_audio",
    "resample",
    "stream_audio",
]

log = logging.getLogger(__name__)

_SILENCE_BLOCK = 1 << 20  # samples of lead-in silence per chunk (bounded memory)


@frozen
class AudioInfo:
    """What the container says about a file's audio, without decoding it.

    ``duration`` is in seconds, from the container's metadata (None when the
    container does not say); ``sample_rate`` and ``channels`` are the audio
    stream's own.
    """

    path: str
    duration: float | None
    sample_rate: int
    channels: int
    codec: str
    has_video: bool


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioFileNotFoundError(p, "no such file")
    if not p.is_file():
        raise AudioFileNotFoundError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyAudioError(p, "the file is empty (0 bytes)")
    return p


def _open(p: Path) -> av.container.InputContainer:
    try:
        return av.open(str(p), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptAudioError(
            p, f"not a readable audio or video file ({_ffmpeg_reason(exc)})"
        ) from exc


def _ffmpeg_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _audio_stream(
    p: Path, container: av.container.InputContainer, *, warn: bool = True
) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["none"]
        raise NoAudioStreamError(
            p, f"the file has no audio stream (streams found: {', '.join(kinds)})"
        )
    streams = container.streams.audio
    if len(streams) > 1 and warn:
        log.warning(
            "%s holds %d audio streams; only the first (stream #%d) is used. To use "
            "another, extract it first (e.g. ffmpeg -i IN -map 0:a:1 OUT.wav for the second).",
            p,
            len(streams),
            streams[0].index,
        )
    return streams[0]


def _lead_in(container: av.container.InputContainer, frame: av.AudioFrame) -> float:
    """Seconds from the container's start (where a player's clock reads 0) to the
    first decoded audio frame: a video whose sound starts after its picture."""
    if frame.time is None or container.start_time is None:
        return 0.0
    return max(0.0, float(frame.time) - container.start_time / av.time_base)


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the container's metadata about the first audio stream.

    Raises:
        AudioDecodeError: (a subclass naming the reason) missing, empty or
            unreadable file, or no audio stream.
    """
    p = _check_file(path)
    with _open(p) as container:
        stream = _audio_stream(p, container, warn=False)
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        ctx = stream.codec_context
        return AudioInfo(
            path=str(p),
            duration=duration,
            sample_rate=int(ctx.sample_rate or 0),
            channels=int(ctx.channels or 0),
            codec=str(ctx.name),
            has_video=bool(container.streams.video),
        )


def _decoded_chunks(p: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks at ``sample_rate``, in file order, as FFmpeg decodes them."""
    if sample_rate <= 0:
        raise InvalidInputError(f"The 'sample_rate' must be > 0. Got {sample_rate} instead.")
    errors = 0
    produced = 0
    lead: int | None = None
    with _open(p) as container:
        stream = _audio_stream(p, container)
        # layout=None keeps the source channels; they are averaged below, exactly,
        # rather than with FFmpeg's downmix matrix (which drops LFE, weights surrounds).
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                errors += 1
                log.warning("%s: demuxing stopped early (%s)", p, _ffmpeg_reason(exc))
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                errors += 1
                log.debug("%s: skipped an undecodable packet (%s)", p, _ffmpeg_reason(exc))
                continue
            for frame in frames:
                if lead is None:  # the first frame: silence up to where the audio starts
                    lead = round(_lead_in(container, frame) * sample_rate)
                    if lead:
                        log.info(
                            "%s: the audio starts %.3f s in; silence put before it",
                            p,
                            lead / sample_rate,
                        )
                    for start in range(0, lead, _SILENCE_BLOCK):
                        chunk = np.zeros(min(_SILENCE_BLOCK, lead - start), dtype=np.float32)
                        produced += chunk.size
                        yield chunk
                frame.pts = None  # let the resampler count samples itself
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    produced += chunk.size
                    yield chunk
        for out in resampler.resample(None):
            chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
            produced += chunk.size
            yield chunk
    if produced == 0:
        if errors:
            raise CorruptAudioError(p, "no audio could be decoded (the data is corrupt)")
        raise EmptyAudioError(p, "the audio stream holds no samples")
    if errors:
        log.warning("%s: %d corrupt packet(s) skipped while decoding", p, errors)


def stream_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    block_seconds: float = 60.0,
) -> Iterator[np.ndarray]:
    """Yield the file as consecutive mono float32 blocks of ``block_seconds``.

    Every block has exactly ``round(block_seconds * sample_rate)`` samples
    except the last, which holds the rest. Memory stays bounded by about one
    block whatever the file's length.

    Raises:
        AudioDecodeError: a subclass naming the file and the reason
            (:class:`AudioFileNotFoundError`, :class:`EmptyAudioError`,
            :class:`CorruptAudioError`, :class:`NoAudioStreamError`).
    """
    p = _check_file(path)
    block = round(block_seconds * sample_rate)
    if block <= 0:
        raise InvalidInputError(
            f"The 'block_seconds' parameter of stream_audio must be > 0. Got {block_seconds}."
        )
    pending: list[np.ndarray] = []
    held = 0
    for chunk in _decoded_chunks(p, sample_rate):
        pending.append(chunk)
        held += chunk.size
        while held >= block:
            joined = np.concatenate(pending)
            yield joined[:block]
            rest = joined[block:]
            pending = [rest] if rest.size else []
            held = rest.size
    if held:
        yield np.concatenate(pending)


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Decode a whole audio or video file to a mono float32 array at ``sample_rate``.

    Raises:
        AudioDecodeError: see :func:`stream_audio`.
    """
    p = _check_file(path)
    chunks = list(_decoded_chunks(p, sample_rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def resample(audio: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a mono (or ``[channels, N]``) float array with torchaudio's sinc filter."""
    if orig_sr <= 0 or new_sr <= 0:
        raise InvalidInputError(f"Sample rates must be > 0. Got {orig_sr} -> {new_sr}.")
    if orig_sr == new_sr:
        return np.asarray(audio, dtype=np.float32)
    import torch  # here: decoding alone (a Ray decode task) never imports torch
    import torchaudio.functional as AF

    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    out: np.ndarray = AF.resample(tensor, int(orig_sr), int(new_sr)).numpy()
    return out
