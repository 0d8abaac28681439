"""BEATs preprocessing: waveform → normalised Kaldi fbank, and the padding-mask reduction."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from audio_embed.errors import InvalidInputError


def forward_padding_mask(padding_mask: Tensor, length: int) -> Tensor:
    """Reduce a ``[B, N]`` padding mask to ``[B, length]`` as the reference does.

    The trailing ``N % length`` entries are dropped, the rest is viewed as
    ``[B, length, N // length]`` and an output position is padding when all of
    its inputs are. BEATs applies this twice: samples → fbank frames, then
    frames → tokens (ignoring that tokens are ordered time-major).
    """
    if padding_mask.ndim != 2:
        raise InvalidInputError(
            f"A padding mask must have shape [batch, length]. Got {tuple(padding_mask.shape)}."
        )
    if length <= 0:
        raise InvalidInputError(f"The target length of a padding mask must be > 0. Got {length}.")
    mask = padding_mask.bool()
    extra = mask.shape[1] % length
    if extra > 0:
        mask = mask[:, : mask.shape[1] - extra]
    return mask.reshape(mask.shape[0], length, -1).all(dim=-1)


@attrs.frozen(kw_only=True)
class BEATsFeatureExtractor:
    """Waveform → normalised Kaldi log-mel fbank, BEATs' model input.

    The waveform (float in [-1, 1]) is scaled by 2^15, passed through
    ``torchaudio.compliance.kaldi.fbank`` (25 ms frames, 10 ms hop, 128 bins,
    everything else at Kaldi's defaults: povey window, no dither, pre-emphasis
    0.97, snip edges), then normalised with ``(fbank − mean) / (2·std)``.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    fbank_mean: float = 15.41663
    fbank_std: float = 6.55582
    waveform_scale: float = 2.0**15

    @property
    def frame_length(self) -> int:
        """Samples per fbank frame (400 at 16 kHz)."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        """Samples between fbank frames (160 at 16 kHz)."""
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Fbank frames produced from ``num_samples`` samples (Kaldi ``snip_edges``)."""
        if num_samples < self.frame_length:
            return 0
        return 1 + (num_samples - self.frame_length) // self.frame_shift

    def min_samples(self, frames: int) -> int:
        """Fewest samples that give ``frames`` fbank frames."""
        return self.frame_length + (frames - 1) * self.frame_shift

    def __call__(self, waveforms: Tensor) -> Tensor:
        """``[B, N]`` float waveforms → ``[B, frames, num_mel_bins]`` float32 fbank."""
        import torchaudio.compliance.kaldi as kaldi

        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise InvalidInputError(
                "BEATsFeatureExtractor expects waveforms of shape [batch, samples]. "
                f"Got {tuple(waveforms.shape)} instead."
            )
        if waveforms.shape[1] < self.frame_length:
            raise InvalidInputError(
                f"BEATsFeatureExtractor needs at least {self.frame_length} samples "
                f"(one {self.frame_length_ms:g} ms frame). Got {waveforms.shape[1]}."
            )
        fbanks = [
            kaldi.fbank(
                row.float().unsqueeze(0) * self.waveform_scale,
                num_mel_bins=self.num_mel_bins,
                sample_frequency=float(self.sample_rate),
                frame_length=self.frame_length_ms,
                frame_shift=self.frame_shift_ms,
            )
            for row in waveforms
        ]
        fbank = torch.stack(fbanks, dim=0)
        return (fbank - self.fbank_mean) / (2 * self.fbank_std)

    def frame_padding_mask(self, padding_mask: Tensor, num_frames: int) -> Tensor:
        """Sample-level ``[B, N]`` mask (True = padding) → frame-level ``[B, num_frames]``.

        Uses the reference's reduction (:func:`forward_padding_mask`), not the
        frames' true extents: a frame is padding when all of its
        ``N // num_frames`` samples in a plain reshape are.
        """
        return forward_padding_mask(padding_mask, num_frames)
