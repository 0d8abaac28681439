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

__all__ = ["DEFAULT_FLOOR", "LEVEL_FLOOR", "LogMelEmbedder"]

#: The floor added to the mel power before the log by default (and before it was a
#: setting: a LOGMEL config without ``floor`` means this one).
DEFAULT_FLOOR = 1e-4
#: A floor far below any recorded background, so the features after the
#: per-recording normalisation do not depend on the recording's level (README
#: "Models": measured, and why it is not the default: fewer markers lose).
LEVEL_FLOOR = 1e-10


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
        device: str | torch.device | None = None,
    ) -> None:
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
        self.dim = len(self.STATS) * n_mels
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
        """Log-mel frames ``[B, T, n_mels]``: natural log of mel power + :attr:`floor`.

        The default floor, 1e-4, keeps empty bands from measuring numerical noise, but
        it is above the background of a recording 20–30 dB quieter than usual, whose
        features then change with its level. ``LEVEL_FLOOR`` (1e-10) lies far below
        the mel power of any recorded background, also 40–60 dB below the usual
        level, so a gain ``g`` only adds ``log g²`` to every frame: the mean and max
        features shift by a constant and the std and |delta| ones stay, and the
        per-recording normalisation removes the shift. It also measures int16
        quantisation noise (about 1e-7) in bands where the audio holds nothing else
        (a synthetic tone; digital silence).
        """
        # in float32 also under float16 autocast (its mel matmul): 1e-10 underflows there
        return torch.log(self.melspec(waveforms).float() + self.floor).transpose(1, 2)

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
        """Compute the log-mel frames of ``audio`` once and pool them per window.

        Exactly equal to embedding each window on its own whenever the window
        starts on a frame boundary (a multiple of 10 ms); other starts are
        embedded one by one. Both encodings come here: the frames are local,
        so this is already shared and exact.
        """
        if batch_size is None:
            batch_size = 256
        length = max(round(window * self.sample_rate), self.min_samples)
        first = np.round(np.asarray(starts, dtype=np.float64) * self.sample_rate).astype(np.int64)
        aligned = first % self.hop_length == 0
        out = np.empty((len(starts), self.dim), dtype=np.float32)
        if (~aligned).any():
            out[~aligned] = super()._embed_each_window(
                audio, starts[~aligned], window, batch_size, None
            )
        if aligned.any():
            need = int(first[aligned].max()) + length
            padded = np.zeros(max(need, len(audio)), dtype=np.float32)
            padded[: len(audio)] = audio
            n_frames = (length - self.melspec.spectrogram.n_fft) // self.hop_length + 1
            with torch.inference_mode():
                frames = self.frames(self.prepare(padded))[0]
                idx = torch.from_numpy(first[aligned] // self.hop_length)
                rows = []
                for lo in range(0, len(idx), batch_size):
                    sel = idx[lo : lo + batch_size, None] + torch.arange(n_frames)[None, :]
                    rows.append(self.statistics(frames[sel]))
                    if on_batch is not None:
                        on_batch(len(sel))
            out[aligned] = torch.cat(rows).float().cpu().numpy()
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
        saved_defaults={"floor": DEFAULT_FLOOR},  # scanners saved before the setting
    )
)
