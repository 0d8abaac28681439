"""How far up in frequency a recording reaches: its effective upper band edge.

A lossy codec at a low bit rate (an MP3 at 64 kbps or less, a phone's AAC) cuts
everything above a few kHz. A scanner trained on full-band recordings and scanning
such a recording sees no energy where its training windows had some, and finds far
fewer occurrences without a word (README, "Errors and limits"). The scanner
therefore records each training recording's band edge at fit (in
``training_summary["files"]``), estimates it again for every scanned recording, and
:func:`bandwidth_warning` says so when the scanned one is clearly lower.

The estimate (:class:`BandEdge`): the long-term power spectrum of the audio as the
embedder receives it (its sample rate), the mean of Hann-windowed periodograms of
``NPERSEG`` samples (31 Hz bins at 16 kHz) over at most ``MAX_FRAMES`` frames of
each decoded block, spread evenly over it (about 10 ms per block of two minutes,
against seconds to embed it). A codec's low-pass is a cliff: everything above its
cut-off lies far below the band just under it. So the edge is the lowest frequency
above which no bin comes within ``DROP_DB`` dB of the median of the ``WIDTH`` bins
(1 kHz at 16 kHz) just below it; with no such cliff it is the Nyquist frequency.
Measured against the whole spectrum's peak instead (the first version), a steady
hum or tone 60 dB above a quiet, full-band background read as "no content above
0.9 kHz"; against the band just below, a spectrum that falls gradually (however
far) has no cliff; silence has no edge.

Measured (:class:`BandEdge` over each decoded file, and ``tests/test_bandwidth.py``):
the wolf bench's eight WAVs and the AAC of its two MP4s reach 8.0 kHz; its test WAVs as
16 kHz mono MP3 (LAME, ``benchmarks/encode_mp3.py``) 7.34 kHz at 64 kbps and 5.84 kHz
at 24 kbps; low-passed at 5 kHz, 5.06 kHz; white noise at 8 kHz resampled to 16 kHz,
4.56 kHz (its resampler's transition band); a quiet pink background under a
-23 dBFS 50 Hz hum, 8.0 kHz. :data:`MARGIN_HZ` (500 Hz) lies between: full-band
recordings differ by nothing, the 64 kbps cut is 0.6 kHz lower (a 10 % margin
would miss it, though it cost occurrences there).

The same pass keeps the peak sample (:attr:`BandEdge.peak`): a recording whose
peak lies below :data:`SILENCE_DBFS` (-80 dBFS, a sample of 1e-4 of full scale)
over the whole decoded stream is silent (:func:`is_silent`; digital zero, or the
dither of a silent 16-bit track, whose steps are -90 dBFS), and
:func:`silence_warning` says so, naming the file's other audio streams (an OBS
video whose chosen track was not recorded): a scan of it finds nothing, and
windows of it teach a scanner nothing.
"""

from __future__ import annotations

import os

import numpy as np

from audio_embed.types import check_sample_rate

__all__ = [
    "DROP_DB",
    "MARGIN_HZ",
    "SILENCE_DBFS",
    "SILENT_EMBEDDING",
    "WIDTH",
    "BandEdge",
    "band_edge",
    "bandwidth_warning",
    "is_silent",
    "recording_silence_warning",
    "silence_warning",
]

#: Samples per periodogram (31.25 Hz bins at 16 kHz).
NPERSEG = 512
#: Periodogram frames read from each decoded block at most (evenly spread).
MAX_FRAMES = 256
#: How far below the band just under it everything above the edge lies (dB).
DROP_DB = 40.0
#: Bins just below a candidate edge whose median stands for the band there.
WIDTH = 32
#: A scanned recording's edge this far below the lowest training edge is warned of.
MARGIN_HZ = 500.0
#: A recording whose peak sample lies below this (dBFS) over its whole decoded
#: stream is silent.
SILENCE_DBFS = -80.0
#: What a silent recording's embeddings (``embed``, ``embed_dataset``) mean.
SILENT_EMBEDDING = "its embeddings hold nothing of any sound"


class BandEdge:
    """The long-term spectrum of a recording, accumulated block by block;
    :meth:`edge` is its upper band edge in Hz (None: silence, or nothing added);
    :attr:`peak` its largest absolute sample (of every sample, not only the
    periodograms' frames; 0.0 when nothing was added)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = check_sample_rate(sample_rate, "BandEdge")
        self._sum = np.zeros(NPERSEG // 2 + 1, dtype=np.float64)
        self._frames = 0
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        from scipy.signal import welch

        if len(block):
            self.peak = max(self.peak, float(np.max(np.abs(block))))
        n = len(block) // NPERSEG
        if n == 0:
            return
        frames = np.asarray(block[: n * NPERSEG]).reshape(n, NPERSEG)
        if n > MAX_FRAMES:
            frames = frames[np.linspace(0, n - 1, MAX_FRAMES).round().astype(int)]
        frames = frames.astype(np.float64)
        _, psd = welch(frames, self.sample_rate, nperseg=NPERSEG, noverlap=0, axis=-1)
        self._sum += psd.sum(axis=0)
        self._frames += len(frames)

    def edge(self) -> float | None:
        if self._frames == 0:
            return None
        psd = self._sum[1:] / self._frames  # bin i + 1 of the spectrum, the DC bin left out
        if not psd.max() > 0:
            return None
        db = 10 * np.log10(np.maximum(psd, 1e-30))
        above = np.maximum.accumulate(db[::-1])[::-1]  # the loudest bin from each one up
        below = np.median(np.lib.stride_tricks.sliding_window_view(db, WIDTH)[:-1], axis=1)
        cliff = np.flatnonzero(above[WIDTH:] < below - DROP_DB)
        if not cliff.size:
            return self.sample_rate / 2
        return float((cliff[0] + WIDTH) * self.sample_rate / NPERSEG)  # the last bin in band


def band_edge(audio: np.ndarray, sample_rate: int) -> float | None:
    """The upper band edge (Hz) of ``audio`` (mono) as :class:`BandEdge` estimates it."""
    acc = BandEdge(sample_rate)
    acc.add(audio)
    return acc.edge()


def bandwidth_warning(
    source: str, edge: float | None, trained: float | None, f_max: float | None = None
) -> str | None:
    """The warning for a recording whose band edge ``edge`` lies more than
    :data:`MARGIN_HZ` below ``trained``, the lowest edge of the training recordings,
    both taken up to ``f_max`` (the top of the model's own bands, when it has that
    setting: above it the model sees nothing either way); None when it does not, or
    when either is unknown."""
    if edge is None or trained is None:
        return None
    top = float("inf") if f_max is None else f_max
    if min(edge, top) >= min(trained, top) - MARGIN_HZ:
        return None
    hint = f", or with --model-option f_max={100 * (edge // 100):.0f}" if f_max else ""
    return (
        f"{source} has no content above {edge / 1000:.1f} kHz (a lossy codec?), the "
        f"scanner's training recordings reach {min(trained, top) / 1000:.1f} kHz: occurrences "
        f"may be missed; train on recordings of the same kind{hint}"
    )


def is_silent(peak: float | None) -> bool:
    """Whether a recording whose largest absolute sample is ``peak`` is silent (below
    :data:`SILENCE_DBFS`); False when ``peak`` is unknown (None: an embedding-cache
    entry made before the peak was kept)."""
    return peak is not None and not peak >= 10 ** (SILENCE_DBFS / 20)


def silence_warning(
    source: str,
    peak: float | None,
    audio_stream: int | str | None,
    streams: list[str],
    consequence: str = "no occurrence can be found in it",
) -> str | None:
    """The warning for a silent recording (:func:`is_silent`), None for any other.
    ``audio_stream``: the stream decoded (None: the first; ``"mix"``: all of them);
    ``streams``: the file's audio streams as :func:`audio_embed.audio.describe_audio_streams`
    lists them (empty: an array, or unknown), named when there are several;
    ``consequence``: what the silence means for the caller."""
    if not is_silent(peak):
        return None
    assert peak is not None
    level = "digital zero" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
    below = f"({level}, below {SILENCE_DBFS:g} dBFS)"
    if len(streams) <= 1:
        return f"{source} is silent {below}: {consequence}"
    if audio_stream == "mix":
        n = len(streams)
        return f"{source}: all {n} of its audio streams are silent {below}: {consequence}"
    return (
        f"{source}: audio stream {audio_stream or 0} is silent {below}: {consequence}; "
        f"it has {len(streams)} audio streams ({'; '.join(streams)}): choose one with "
        "--audio-stream K (Python: audio_stream=K)"
    )


def recording_silence_warning(
    source: str | os.PathLike[str] | np.ndarray,
    peak: float | None,
    audio_stream: int | str | None,
    consequence: str = "no occurrence can be found in it",
) -> str | None:
    """:func:`silence_warning` of a file (or an array, ``<array>``) whose largest
    absolute sample is ``peak``: the file's audio streams are listed (a second
    opening of its header) only when it is silent."""
    if not is_silent(peak):
        return None
    if isinstance(source, np.ndarray):
        return silence_warning("<array>", peak, audio_stream, [], consequence)
    from audio_embed.audio import describe_audio_streams
    from audio_embed.errors import AudioEmbedError

    try:
        streams = describe_audio_streams(source)
    except AudioEmbedError:  # gone since: the warning without the list
        streams = []
    return silence_warning(str(source), peak, audio_stream, streams, consequence)
