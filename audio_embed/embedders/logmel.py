"""A weight-free embedder: statistics of the log-mel spectrogram.

Needs no download, is deterministic and fast; it is the offline default and
the baseline every pretrained model is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torchaudio

from audio_embed.embedders.base import Embedder
from audio_embed.errors import InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder

__all__ = ["DEFAULT_FLOOR", "FRONTENDS", "LEVEL_FLOOR", "PCEN_LEAD_IN", "LogMelEmbedder"]

#: The floor added to the mel power before the log by default (and before it was a
#: setting: a LOGMEL config without ``floor`` means this one).
DEFAULT_FLOOR = 1e-4
#: A floor far below any recorded background, so the features after the
#: per-recording normalisation do not depend on the recording's level (README
#: "Models": measured, and why it is not the default: fewer markers lose).
LEVEL_FLOOR = 1e-10
#: What a LOGMEL vector is computed from: the log of the mel power (``"log"``, the
#: default), per-channel energy normalisation of the mel magnitudes (``"pcen"``), or
#: both side by side (``"log+pcen"``: twice the dimensions).
FRONTENDS = ("log", "pcen", "log+pcen")
#: Seconds of audio before a window over which PCEN's smoother runs first (five
#: of its 0.4 s time constants: what it started from weighs e^-5 at the window).
PCEN_LEAD_IN = 2.0
#: librosa.pcen's defaults (time constant in seconds, gain, bias, power, eps),
#: for mel magnitudes scaled by 2**31 as librosa advises for float audio.
_PCEN = (0.4, 0.98, 2.0, 0.5, 1e-6)
_PCEN_SCALE = float(2**31)


class LogMelEmbedder(Embedder):
    """Per-band statistics of a log-mel spectrogram.

    For each of ``n_mels`` bands: the mean, standard deviation and maximum of
    the log-mel energy over the window, and the mean absolute frame-to-frame
    difference (how much the band fluctuates). ``dim = 4 * n_mels``.

    Args:
        n_mels: mel bands (64 by default, 50 Hz to 8 kHz).
        n_fft: FFT size in samples (512 = 32 ms at 16 kHz).
        hop_length: frame step in samples (160 = 10 ms).
        floor: added to the mel power before the log (see :meth:`frames`);
            1e-4 by default; ``LEVEL_FLOOR`` (1e-10) for recordings of other levels
            than the training ones.
        frontend: ``"log"`` (default), ``"pcen"`` or ``"log+pcen"``
            (:data:`FRONTENDS`): per-channel energy normalisation (PCEN, Wang et
            al. 2017, with librosa's defaults) divides each band by its own
            smoothed energy, so a steady background weighs less and the level
            hardly matters; the statistics are the same, of PCEN frames
            (``"log+pcen"``: per statistic, the log bands then the PCEN bands).
    """

    name = "LOGMEL"
    STATS = ("mean", "std", "max", "delta")

    def __init__(
        self,
        n_mels: int = 64,
        n_fft: int = 512,
        hop_length: int = 160,
        f_min: float = 50.0,
        f_max: float = 8000.0,
        floor: float = DEFAULT_FLOOR,
        frontend: str = "log",
        device: str | torch.device | None = None,
    ) -> None:
        if frontend not in FRONTENDS:
            raise InvalidInputError(
                f"LOGMEL frontend must be one of {', '.join(FRONTENDS)}; got {frontend!r}."
            )
        self.frontend = frontend
        #: PCEN's lead-in in frames; lead_in is exactly that many hops (streaming's margin)
        self._lead_frames = (
            round(PCEN_LEAD_IN * self.sample_rate / hop_length) if "pcen" in frontend else 0
        )
        self.lead_in = self._lead_frames * hop_length / self.sample_rate
        try:
            self.floor = float(floor)
        except (TypeError, ValueError):
            self.floor = math.nan
        if not (0 < self.floor < math.inf):
            raise InvalidInputError(f"LOGMEL floor must be positive and finite; got {floor!r}.")
        self.n_mels = n_mels
        self.hop_length = hop_length
        self._settings: dict[str, Any] = {
            "n_mels": n_mels,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "f_min": float(f_min),
            "f_max": float(f_max),
        }
        if self.floor != DEFAULT_FLOOR:
            # only when not the default: caches, indexes and scanners made before
            # the setting existed keep their keys
            self._settings["floor"] = self.floor
        if frontend != "log":
            self._settings["frontend"] = frontend
        self.dim = len(self.STATS) * n_mels * (2 if frontend == "log+pcen" else 1)
        self.min_samples = n_fft
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=2.0,
            center=False,
        )
        self.to(device or "cpu")

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, n_mels]`` (``[B, T, 2 * n_mels]`` for ``"log+pcen"``, log first)
        of each input from its own start.

        Log: natural log of mel power + :attr:`floor`. The default floor, 1e-4,
        keeps empty bands from measuring numerical noise, but it is above the
        background of a recording 20–30 dB quieter than usual, whose features then
        change with its level. ``LEVEL_FLOOR`` (1e-10) lies far below the mel power
        of any recorded background, also 40–60 dB below the usual level, so a gain
        ``g`` only adds ``log g²`` to every frame: the mean and max features shift
        by a constant and the std and |delta| ones stay, and the per-recording
        normalisation removes the shift. It also measures int16 quantisation noise
        (about 1e-7) in bands where the audio holds nothing else (a synthetic tone;
        digital silence).

        PCEN: its smoother starts at each input's first frame. In a recording
        (:meth:`embed_windows`) it starts up to :data:`PCEN_LEAD_IN` seconds before
        each window instead.
        """
        return self._frames(self._mel(waveforms))

    def _mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        # in float32 also under float16 autocast (its mel matmul): 1e-10 underflows there
        power: torch.Tensor = self.melspec(waveforms).float()
        return power.transpose(-1, -2)  # [..., T, M]

    def _frames(self, power: torch.Tensor) -> torch.Tensor:
        """Frames from mel power ``[..., T, M]`` (PCEN's smoother from its first frame)."""
        if self.frontend == "log":
            return self._join(power, None)
        mag = _magnitude(power)
        return self._join(power, _normalise(mag, _smooth(mag, self._decay)))

    def _join(self, power: torch.Tensor, pcen: torch.Tensor | None) -> torch.Tensor:
        """The frontend's frames: the log of ``power``, ``pcen``, or both side by side."""
        if pcen is None:
            return torch.log(power + self.floor)
        if self.frontend == "pcen":
            return pcen
        return torch.cat([torch.log(power + self.floor), pcen], dim=-1)

    @property
    def _decay(self) -> float:
        """What PCEN's smoother keeps of its past per frame (1 - s, librosa's ``b``)."""
        t = _PCEN[0] * self.sample_rate / self.hop_length
        return 1.0 - (math.sqrt(1 + 4 * t**2) - 1) / (2 * t**2)

    @staticmethod
    def statistics(frames: torch.Tensor) -> torch.Tensor:
        """Pool log-mel frames ``[B, T, M]`` into ``[B, 4 * M]`` statistics."""
        mean = frames.mean(dim=1)
        std = frames.std(dim=1, unbiased=False)
        peak = frames.amax(dim=1)
        if frames.shape[1] > 1:
            delta = (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=1)
        else:
            delta = torch.zeros_like(mean)
        return torch.cat([mean, std, peak, delta], dim=-1)

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.statistics(self.frames(waveforms))

    def _embed_each_window(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray:
        """Compute the mel frames of ``audio`` once and pool them per window.

        Exactly equal to embedding each window on its own whenever the window
        starts on a frame boundary (a multiple of 10 ms); other starts are
        embedded one by one. Both encodings come here: the frames are local,
        so this is already shared and exact. With PCEN, a window's vector also
        depends on the :data:`PCEN_LEAD_IN` seconds before it (fewer at the start
        of ``audio``), whatever the other windows: its smoother runs from there.
        """
        if batch_size is None:
            batch_size = 256
        length = max(round(window * self.sample_rate), self.min_samples)
        first = np.round(np.asarray(starts, dtype=np.float64) * self.sample_rate).astype(np.int64)
        aligned = first % self.hop_length == 0
        out = np.empty((len(starts), self.dim), dtype=np.float32)
        for i in np.flatnonzero(~aligned):  # on a grid of their own: from their own lead-in
            back = self.hop_length * min(self._lead_frames, int(first[i]) // self.hop_length)
            piece = np.zeros(back + length, dtype=np.float32)
            got = audio[first[i] - back : first[i] + length]
            piece[: len(got)] = got
            with torch.inference_mode():
                frames = self._frames(self._mel(self.prepare(piece))[0])
            out[i] = self.statistics(frames[None, back // self.hop_length :]).float().cpu()[0]
        if on_batch is not None and (~aligned).any():
            on_batch(int((~aligned).sum()))
        if aligned.any():
            need = int(first[aligned].max()) + length
            padded = np.zeros(max(need, len(audio)), dtype=np.float32)
            padded[: len(audio)] = audio
            n_frames = (length - self.melspec.spectrogram.n_fft) // self.hop_length + 1
            with torch.inference_mode():
                if self.frontend == "log":  # through frames(), which a subclass may change
                    whole = self.frames(self.prepare(padded))[0]
                else:
                    power = self._mel(self.prepare(padded))[0]  # [T, M]
                    # one smoother over all the audio, in float64 (a loud passage's
                    # energy is subtracted again below); a window's own, started at its
                    # lead-in, differs from it by what they differ there, decayed
                    mag = _magnitude(power.double())
                    smooth = _smooth(mag, self._decay)
                    kept = torch.from_numpy(self._decay ** np.arange(self._lead_frames + n_frames))
                idx = torch.from_numpy(first[aligned] // self.hop_length)
                rows = []
                for lo in range(0, len(idx), batch_size):
                    at = idx[lo : lo + batch_size]
                    keep = at[:, None] + torch.arange(n_frames)[None, :]  # the window's frames
                    if self.frontend == "log":
                        frames = whole[keep]
                    else:
                        lead = (at - self._lead_frames).clamp_min(0)
                        gap = (mag[lead] - smooth[lead])[:, None, :]
                        own = smooth[keep] + kept[keep - lead[:, None]][..., None] * gap
                        frames = self._join(power[keep], _normalise(mag[keep], own).float())
                    rows.append(self.statistics(frames))
                    if on_batch is not None:
                        on_batch(len(at))
            out[aligned] = torch.cat(rows).float().cpu().numpy()
        return out


def _magnitude(power: torch.Tensor) -> torch.Tensor:
    return power.clamp_min(0).sqrt() * _PCEN_SCALE


def _smooth(mag: torch.Tensor, decay: float) -> torch.Tensor:
    """PCEN's smoother over frames ``[T, M]`` (or ``[B, T, M]``), started at the first
    frame's energy (librosa's lfilter_zi): the frames smoothed from zero plus the first
    frame's energy, decayed (not the first subtracted and added again: that keeps a
    loud first frame's rounding error for ever)."""
    moved = mag.transpose(-1, -2)  # lfilter runs over the last axis
    a = torch.tensor([1.0, -decay], dtype=mag.dtype)
    b = torch.tensor([1.0 - decay, 0.0], dtype=mag.dtype)
    fade = decay ** torch.arange(1, moved.shape[-1] + 1, dtype=mag.dtype)
    out: torch.Tensor = torchaudio.functional.lfilter(moved, a, b, clamp=False)
    out += moved[..., :1] * fade
    return out.transpose(-1, -2)


def _normalise(mag: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """librosa.pcen's defaults: each band divided by its own smoothed energy."""
    _, gain, bias, exponent, eps = _PCEN
    out: torch.Tensor = (mag / (eps + smooth.clamp_min(0)) ** gain + bias) ** exponent
    out -= bias**exponent
    return out


register_embedder(
    EmbedderSpec(
        name="LOGMEL",
        factory=LogMelEmbedder,
        dim=4 * 64,
        source="none (weight-free)",
        license="n/a",
        description="log-mel band statistics (mean, std, max, |delta|); no weights",
        takes_checkpoint=False,
        # scanners saved before the settings
        saved_defaults={"floor": DEFAULT_FLOOR, "frontend": "log"},
    )
)
