"""Decoding audio and video files to mono float32 at a fixed rate, with PyAV.

Everything FFmpeg reads works: wav, flac, ogg, mp3, m4a, and the audio track
of video containers (mp4, mkv, mov, webm…). Multi-channel audio is averaged
to mono; audio is resampled with FFmpeg's resampler to the rate asked for.
Times are the container's: when a video's sound starts after its picture, the
decoded audio begins with that much silence, so a time in the result is the
time a player shows.

Of several audio streams (an OBS recording's game, microphone and music
tracks; a film's languages) the first is decoded unless ``audio_stream``
names another: its position among the file's audio streams, 0-based, as
FFmpeg's ``-map 0:a:N`` counts them, or ``"mix"``: every audio stream
averaged, each on the container's clock. Decoding the first of several
without naming it logs a warning that lists them.

:func:`stream_audio` yields fixed-size blocks so an hours-long file is decoded
once, block by block, and never held in memory twice; :func:`load_audio`
returns the whole file. An MP3 or PCM WAV that decodes clearly shorter than its header
says (its end cut off) is decoded as far as it goes, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Literal, TypeAlias

import av
import numpy as np
from attrs import frozen

from audio_embed._media import (
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_media_file,
    same_stem_hint,
)
from audio_embed.errors import (
    AudioEmbedError,
    AudioFileNotFoundError,
    CorruptAudioError,
    EmptyAudioError,
    InvalidInputError,
    NoAudioStreamError,
)
from audio_embed.types import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_sample_rate

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SAMPLE_RATE",
    "MEDIA_EXTENSIONS",
    "MIN_SAMPLE_RATE",
    "MIX",
    "VIDEO_EXTENSIONS",
    "AudioInfo",
    "AudioStream",
    "check_audio_stream",
    "describe_audio_streams",
    "is_media_file",
    "load_audio",
    "probe_audio",
    "resample",
    "saved_audio_stream",
    "stream_audio",
]

log = logging.getLogger(__name__)

_SILENCE_BLOCK = 1 << 20  # samples of lead-in silence per chunk (bounded memory)
_MIX_BLOCK_SECONDS = 60.0  # load_audio's blocks when mixing streams


#: ``audio_stream="mix"``: every audio stream of the file, averaged.
MIX: Literal["mix"] = "mix"
#: Which audio stream to decode: its position among the file's audio streams
#: (0-based, as ``ffmpeg -map 0:a:N``), or ``"mix"``: all of them averaged.
AudioStream: TypeAlias = int | Literal["mix"]


@frozen
class AudioInfo:
    """What the container says about a file's audio, without decoding it.

    ``duration`` is in seconds, from the container's metadata (None when the
    container does not say); ``sample_rate`` and ``channels`` are the audio
    stream's own (``audio_stream``: its position among the file's audio streams;
    ``n_audio_streams``: how many the file has). For ``"mix"`` they are the first
    stream's, and ``duration`` the longest stream's.
    """

    path: str
    duration: float | None
    sample_rate: int
    channels: int
    codec: str
    has_video: bool
    audio_stream: AudioStream = 0
    n_audio_streams: int = 1


def check_audio_stream(value: object, owner: str = "audio_stream") -> AudioStream:
    """``value`` as an :data:`AudioStream` (a whole number >= 0, or ``"mix"``), else
    :class:`InvalidInputError`."""
    if isinstance(value, str) and value == MIX:
        return MIX
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInputError(
            f"The {owner!r} must be a whole number >= 0 (the position among the file's "
            "audio streams: 0 for the first, as ffmpeg's -map 0:a:0) or 'mix' (all of them "
            f"averaged). Got {value!r} instead."
        )
    return int(value)


def saved_audio_stream(
    value: object, where: str | os.PathLike[str], error: type[AudioEmbedError]
) -> AudioStream | None:
    """An ``audio_stream`` read back from a saved file (a scanner, an index manifest):
    None when absent (saved before the setting existed: the first stream, which it
    decoded); an invalid value raises ``error`` naming ``where``."""
    if value is None:
        return None
    try:
        return check_audio_stream(value)
    except InvalidInputError as exc:
        raise error(f"{os.fspath(where)}: its 'audio_stream' setting is invalid: {exc}") from exc


def _stream_label(n: int, stream: av.audio.stream.AudioStream) -> str:
    """``1: eng 'Game' (aac, 2 ch)``: the number, language and title when the file
    says them, codec and channels."""
    meta = stream.metadata or {}
    language = str(meta.get("language", "")).strip()
    title = str(meta.get("title", "")).strip()
    named = ""
    if language and language.lower() != "und":
        named += f" {language}"
    if title:
        named += f" {title!r}"
    ctx = stream.codec_context
    return f"{n}{':' if named else ''}{named} ({ctx.name}, {int(ctx.channels or 0)} ch)"


def describe_audio_streams(path: str | os.PathLike[str]) -> list[str]:
    """One line per audio stream of ``path``, in order: its number for ``audio_stream``,
    its language and title when the file says them, its codec and channels."""
    p = _check_file(path)
    with _open(p) as container:
        return [_stream_label(n, s) for n, s in enumerate(container.streams.audio)]


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioFileNotFoundError(p, "no such file" + same_stem_hint(p))
    if p.is_dir():  # before: "not a regular file", of Scanner.scan("recordings/")
        raise AudioFileNotFoundError(
            p,
            "a folder, not an audio or video file: one file is read at a time (a folder's "
            "files: audio_embed.batch.scan_to_folder, or audio-embed scan)",
        )
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
    p: Path,
    container: av.container.InputContainer,
    audio_stream: int | None,
    *,
    warn: bool = True,
) -> av.audio.stream.AudioStream:
    """Audio stream number ``audio_stream`` (None: the first, with a warning when
    there are several and ``warn``)."""
    if not container.streams.audio:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["none"]
        raise NoAudioStreamError(
            p, f"the file has no audio stream (streams found: {', '.join(kinds)})"
        )
    streams = container.streams.audio
    n = 0 if audio_stream is None else audio_stream
    if n >= len(streams):
        listed = "; ".join(_stream_label(i, s) for i, s in enumerate(streams))
        raise NoAudioStreamError(
            p,
            f"there is no audio stream {n} (audio_stream / --audio-stream counts from 0): "
            f"the file has {len(streams)} audio stream{'s' if len(streams) > 1 else ''}: "
            f"{listed}",
        )
    if audio_stream is None and len(streams) > 1 and warn:
        log.warning(
            "%s holds %d audio streams; the first (0) is used. Choose another with "
            "audio_stream=N (--audio-stream N, 0-based as ffmpeg's -map 0:a:N), or mix "
            "them all with audio_stream='mix': %s",
            p,
            len(streams),
            "; ".join(_stream_label(i, s) for i, s in enumerate(streams)),
        )
    return streams[n]


def _lead_in(container: av.container.InputContainer, frame: av.AudioFrame) -> float:
    """Seconds from the container's start (where a player's clock reads 0) to the
    first decoded audio frame: a video whose sound starts after its picture."""
    if frame.time is None or container.start_time is None:
        return 0.0
    return max(0.0, float(frame.time) - container.start_time / av.time_base)


def probe_audio(path: str | os.PathLike[str], audio_stream: AudioStream | None = None) -> AudioInfo:
    """Read the container's metadata about audio stream ``audio_stream`` (None or 0:
    the first; ``"mix"``: see :class:`AudioInfo`; see :func:`stream_audio`).

    Raises:
        AudioDecodeError: (a subclass naming the reason) missing, empty or
            unreadable file, no audio stream, or no stream ``audio_stream``
            (:class:`NoAudioStreamError`, naming the streams there are).
    """
    p = _check_file(path)
    n = None if audio_stream is None else check_audio_stream(audio_stream)
    with _open(p) as container:
        stream = _audio_stream(p, container, None if n == MIX else n, warn=False)
        streams = list(container.streams.audio) if n == MIX else [stream]
        durations = [
            float(s.duration * s.time_base)
            for s in streams
            if s.duration is not None and s.time_base is not None
        ]
        duration: float | None = None
        if len(durations) == len(streams):
            duration = max(durations)
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
            audio_stream=n or 0,
            n_audio_streams=len(container.streams.audio),
        )


def _decoded_chunks(
    p: Path, sample_rate: int, audio_stream: int | None = None
) -> Iterator[np.ndarray]:
    """Mono float32 chunks at ``sample_rate`` (checked by :func:`stream_audio` and
    :func:`load_audio`, its callers), in file order, as FFmpeg decodes them."""
    errors = 0
    produced = 0
    decoded = 0  # the file's own samples (per channel), before resampling
    rate = 0  # theirs
    lead: int | None = None
    with _open(p) as container:
        stream = _audio_stream(p, container, audio_stream)
        header = _HEADER_LENGTHS.get(container.format.name)
        declared = None if header is None else (header[0], header[1](p, stream))
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
                if frame.sample_rate < MIN_SAMPLE_RATE:
                    raise CorruptAudioError(p, _low_rate_reason(frame.sample_rate))
                decoded += frame.samples
                rate = frame.sample_rate
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
                    chunk = _finite(
                        p, out.to_ndarray().mean(axis=0, dtype=np.float32), produced, sample_rate
                    )
                    produced += chunk.size
                    yield chunk
        for out in resampler.resample(None):
            chunk = _finite(
                p, out.to_ndarray().mean(axis=0, dtype=np.float32), produced, sample_rate
            )
            produced += chunk.size
            yield chunk
    if produced == 0:
        if errors:
            raise CorruptAudioError(p, "no audio could be decoded (the data is corrupt)")
        which = "the audio stream" if audio_stream is None else f"audio stream {audio_stream}"
        if decoded:  # FFmpeg's resampler gives nothing below a few dozen (22 to 133) samples
            raise EmptyAudioError(
                p,
                f"{which} holds only {decoded} sample(s) at {rate} Hz ({decoded / rate:.4f} s): "
                f"too few to resample to {sample_rate} Hz",
            )
        raise EmptyAudioError(p, f"{which} holds no samples")
    if errors:
        log.warning("%s: %d corrupt packet(s) skipped while decoding", p, errors)
    if declared is not None:
        _warn_if_cut_short(p, decoded / rate, *declared)


#: A decoded MP3 is warned of as cut short when it is shorter than its header says by
#: more than this (complete files measured 0.03–0.21 s over their decoded length, the
#: encoder's delay and padding; a share of the length would let an hour-long file lose
#: minutes without a word).
_CUT_SHORT_SECONDS = 1.0


def _warn_if_cut_short(p: Path, decoded: float, kind: str, declared: float | None) -> None:
    """A warning when a file decoded to clearly less than its header's length
    (``declared`` seconds, e.g. :func:`_mp3_header_seconds`'s; None: unknown): the first
    part of a file whose end is missing (a copy or download broken off) decodes without
    an error (before: without a word)."""
    if declared is None:
        return
    missing = declared - decoded
    if missing > _CUT_SHORT_SECONDS:
        log.warning(
            "%s: %.1f s decoded, but its %s header says %.1f s: the file's end is missing "
            "(a copy or download broken off?), so only its first %.1f s are used. Copy it "
            "again from the source.",
            p,
            decoded,
            kind,
            declared,
            decoded,
        )


#: ``data`` chunk sizes that writers leave when the length is unknown (a pipe): FFmpeg
#: 0xFFFFFFFF, sox 0x7FFFF000, arecord 0x7FFFFFFF and 0x80000000 (and 0, soundfile).
_WAV_UNKNOWN_SIZES = (0xFFFFFFFF, 0x7FFFF000, 0x7FFFFFFF, 0x80000000)


def _wav_header_seconds(path: Path) -> float | None:
    """The length a PCM WAV's header gives (its ``data`` chunk's size), in seconds, by the
    standard library's reader; None for a WAV it does not read (float samples, and
    before Python 3.12 extensible ones) or whose size was left unknown
    (:data:`_WAV_UNKNOWN_SIZES`, 0). FFmpeg gives a cut WAV's duration from the bytes
    that are there, not from this."""
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            frames, rate = w.getnframes(), w.getframerate()
            block = w.getsampwidth() * w.getnchannels()
    except (wave.Error, OSError, EOFError):
        return None
    size = frames * block  # the chunk's size, rounded down to whole frames
    if not rate or not size or any(0 <= v - size < block for v in _WAV_UNKNOWN_SIZES):
        return None
    return frames / rate


def _mp3_header_seconds(path: str | os.PathLike[str]) -> float | None:
    """The length an MP3 file's encoder wrote in its first frame, in seconds: the frame
    count of a Xing or Info header (LAME and FFmpeg write one, CBR too) or a VBRI header
    (Fraunhofer), times the samples per frame, over the sample rate. None without one.

    Without such a header FFmpeg estimates an MP3's duration from its size and first
    frame's bit rate: a cut file's estimate is as short as the file, and a complete
    variable-bit-rate file's can be far longer than it (measured: 52.0 s for a 20.0 s
    file starting with 3 s of silence), so only this count tells a file cut short."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(10)
            start = 0
            if len(head) == 10 and head[:3] == b"ID3":  # an ID3v2 tag first: its size
                size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14
                size |= (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
                start = 10 + size + (10 if head[3] == 4 and head[5] & 0x10 else 0)  # v2.4 footer
            f.seek(start)
            frame = f.read(64)
    except OSError:
        return None
    if len(frame) < 56 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    version = (frame[1] >> 3) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = (frame[1] >> 1) & 3  # 1: layer III
    rate_index = (frame[2] >> 2) & 3
    if version == 1 or layer != 1 or rate_index == 3:
        return None
    rate = (44100, 48000, 32000)[rate_index] >> {3: 0, 2: 1, 0: 2}[version]
    mono = frame[3] >> 6 == 3
    at = 4 + ((17 if mono else 32) if version == 3 else (9 if mono else 17))
    if frame[at : at + 4] in (b"Xing", b"Info"):
        has_frames = frame[at + 7] & 1
        frames = int.from_bytes(frame[at + 8 : at + 12], "big") if has_frames else 0
    elif frame[36:40] == b"VBRI":
        frames = int.from_bytes(frame[50:54], "big")
    else:
        return None
    return frames * (1152 if version == 3 else 576) / rate if frames else None


def _flac_header_seconds(stream: av.audio.stream.AudioStream) -> float | None:
    """The length a FLAC file's STREAMINFO block gives (its total sample count over its
    sample rate), in seconds, as FFmpeg's FLAC demuxer reads it into the open stream's
    duration; None when the encoder left the count 0 (unknown: a stream written to a
    pipe). Unlike WAV and MP3 this is FFmpeg's own duration: for FLAC it is the header's,
    whatever part of the file is there."""
    if not stream.duration or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


#: The containers whose header says how long the file is, with that header's name and
#: reader (of the file's path and its open audio stream; FFmpeg's duration is no help
#: for WAV and MP3: for a cut file it is the length that is there). Ogg (Vorbis, Opus)
#: has no such header: FFmpeg takes its length from the last page's granule position,
#: so a cut file's is the length that is left.
_HEADER_LENGTHS: dict[
    str, tuple[str, Callable[[Path, av.audio.stream.AudioStream], float | None]]
] = {
    "flac": ("FLAC STREAMINFO", lambda _path, stream: _flac_header_seconds(stream)),
    "mp3": ("MP3", lambda path, _stream: _mp3_header_seconds(path)),
    "wav": ("WAV", lambda path, _stream: _wav_header_seconds(path)),
}


def _low_rate_reason(rate: int) -> str:
    """Why a file at ``rate`` (below :data:`MIN_SAMPLE_RATE`) is not decoded."""
    return (
        f"its sample rate is {rate} Hz, below the lowest read ({MIN_SAMPLE_RATE} Hz): it "
        f"would hold nothing above {rate / 2:g} Hz, below every model's band, so its "
        "header's rate is likely wrong (a damaged or hand-written header). Give the samples "
        "their true rate without resampling them: ffmpeg -i IN -af asetrate=RATE OUT.wav"
    )


def _finite(p: Path, chunk: np.ndarray, before: int, sample_rate: int) -> np.ndarray:
    """``chunk``, refused when it holds NaN or infinite samples (a damaged float WAV:
    before, the embedder's ``got N NaN or infinite sample(s) … numpy.nan_to_num``,
    naming no file)."""
    bad = ~np.isfinite(chunk)
    if bad.any():
        at = (before + int(np.argmax(bad))) / sample_rate
        raise CorruptAudioError(
            p,
            f"it holds NaN or infinite samples (the first {at:.3f} s in): a damaged "
            "floating-point recording; repair the file (replace them with silence in an "
            "audio editor) or export it again",
        )
    return chunk


def _rebatched(chunks: Iterator[np.ndarray], block: int) -> Generator[np.ndarray, None, None]:
    """``chunks`` as consecutive blocks of ``block`` samples (the last holds the rest)."""
    pending: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
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


def _mixed_blocks(p: Path, sample_rate: int, block: int) -> Iterator[np.ndarray]:
    """Blocks of every audio stream of ``p`` averaged. Each stream is decoded by its
    own pass over the file (the file is read once per stream; memory stays one block
    per stream), with its lead-in silence, so all are on the container's clock; a
    stream that ends early counts as silence from there."""
    with _open(p) as container:
        _audio_stream(p, container, None, warn=False)  # none at all: the usual error
        n = len(container.streams.audio)
    if n == 1:
        yield from _rebatched(_decoded_chunks(p, sample_rate, 0), block)
        return
    parts = [
        _silent_if_empty(_rebatched(_decoded_chunks(p, sample_rate, k), block)) for k in range(n)
    ]
    produced = 0
    try:
        for blocks in zip_longest(*parts):
            mixed = np.zeros(max(len(b) for b in blocks if b is not None), dtype=np.float32)
            for b in blocks:
                if b is not None:
                    mixed[: len(b)] += b
            mixed /= n
            produced += mixed.size
            yield mixed
    finally:
        for part in parts:
            part.close()
    if not produced:
        raise EmptyAudioError(p, f"none of its {n} audio streams holds samples")


def _silent_if_empty(blocks: Iterator[np.ndarray]) -> Generator[np.ndarray, None, None]:
    """``blocks``; a stream without samples yields none (silence in a mix), with a note."""
    try:
        yield from blocks
    except EmptyAudioError as exc:
        log.info("%s; it is silent in the mix", exc)


def stream_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    block_seconds: float = 60.0,
    audio_stream: AudioStream | None = None,
) -> Iterator[np.ndarray]:
    """Yield the file as consecutive mono float32 blocks of ``block_seconds``.

    Every block has exactly ``round(block_seconds * sample_rate)`` samples
    except the last, which holds the rest. Memory stays bounded by about one
    block whatever the file's length.

    ``audio_stream``: which audio stream to decode, by its position among the
    file's audio streams (0-based, as ``ffmpeg -map 0:a:N``; e.g. 1 for an OBS
    recording's second track). None (default): the first, with a warning when
    the file has several; 0: the first, without it. ``"mix"``: every audio
    stream averaged (each weighs 1/N throughout), each on the container's
    clock, a stream that ends early silent from there; the file is read once
    per stream. A file with one audio stream decodes the same with 0 and
    ``"mix"``.

    Raises:
        AudioDecodeError: a subclass naming the file and the reason
            (:class:`AudioFileNotFoundError`, :class:`EmptyAudioError`,
            :class:`CorruptAudioError`, :class:`NoAudioStreamError`: no audio
            at all, or no stream ``audio_stream``, naming the streams there are).
        InvalidInputError: ``audio_stream`` is not a whole number >= 0 or ``"mix"``.
    """
    p = _check_file(path)
    n = None if audio_stream is None else check_audio_stream(audio_stream)
    sample_rate = check_sample_rate(sample_rate, "stream_audio")
    block = round(block_seconds * sample_rate)
    if block <= 0:
        raise InvalidInputError(
            f"The 'block_seconds' parameter of stream_audio must be > 0. Got {block_seconds}."
        )
    if n == MIX:
        return _mixed_blocks(p, sample_rate, block)
    return _rebatched(_decoded_chunks(p, sample_rate, n), block)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    audio_stream: AudioStream | None = None,
) -> np.ndarray:
    """Decode a whole audio or video file to a mono float32 array at ``sample_rate``.

    ``audio_stream``: which audio stream, or ``"mix"`` (see :func:`stream_audio`).

    Raises:
        AudioDecodeError: see :func:`stream_audio`.
    """
    p = _check_file(path)
    n = None if audio_stream is None else check_audio_stream(audio_stream)
    sample_rate = check_sample_rate(sample_rate, "load_audio")
    if n == MIX:
        chunks = list(_mixed_blocks(p, sample_rate, round(_MIX_BLOCK_SECONDS * sample_rate)))
    else:
        chunks = list(_decoded_chunks(p, sample_rate, n))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def resample(audio: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a mono (or ``[channels, N]``) float array with torchaudio's sinc filter.

    Raises:
        InvalidInputError: a rate that is not a whole number of hertz in
            [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`]
            (:func:`~audio_embed.types.check_sample_rate`).
    """
    orig_sr = check_sample_rate(orig_sr, "resample", "orig_sr")
    new_sr = check_sample_rate(new_sr, "resample", "new_sr")
    if orig_sr == new_sr:
        return np.asarray(audio, dtype=np.float32)
    import torch  # here: decoding alone (a Ray decode task) never imports torch
    import torchaudio.functional as AF

    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    out: np.ndarray = AF.resample(tensor, int(orig_sr), int(new_sr)).numpy()
    return out
