"""EAT preprocessing: waveform → normalised Kaldi log-mel fbank, padded or cut."""

from __future__ import annotations

import math

import torch

from audio_embed.errors import InvalidInputError


class EATFeatureExtractor:
    """Waveforms ``[B, N]`` at 16 kHz → normalised Kaldi fbank images ``[B, 1, T, 128]``.

    Args:
        target_length: frames to zero-pad or cut to (1024 = 10.24 s, the
            fine-tuning length). None pads each batch to the next multiple of
            ``multiple_of`` frames instead and never cuts. Must be a multiple of
            ``multiple_of`` (the patch size) when given.
        num_mel_bins: mel bins (128 for every released EAT).
        multiple_of: the patch size in frames.
    """

    sample_rate: int = 16000
    mean: float = -4.268
    std: float = 4.569

    def __init__(
        self, target_length: int | None = 1024, *, num_mel_bins: int = 128, multiple_of: int = 16
    ) -> None:
        if multiple_of < 1:
            raise InvalidInputError(
                f"The 'multiple_of' parameter of EATFeatureExtractor must be >= 1. "
                f"Got {multiple_of} instead."
            )
        if target_length is not None and (target_length < 1 or target_length % multiple_of):
            raise InvalidInputError(
                f"The 'target_length' parameter of EATFeatureExtractor must be a positive "
                f"multiple of {multiple_of} frames (or None). Got {target_length} instead."
            )
        self.target_length = target_length
        self.num_mel_bins = num_mel_bins
        self.multiple_of = multiple_of

    def __repr__(self) -> str:
        return (
            f"EATFeatureExtractor(target_length={self.target_length}, "
            f"num_mel_bins={self.num_mel_bins})"
        )

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """Raw Kaldi fbank ``[frames, num_mel_bins]`` of one 1-D waveform, mean removed."""
        from torchaudio.compliance import kaldi

        if waveform.ndim != 1 or waveform.shape[0] < 400:
            raise InvalidInputError(
                "EATFeatureExtractor.fbank expects one 1-D waveform of at least 400 samples "
                f"(25 ms). Got shape {tuple(waveform.shape)} instead."
            )
        waveform = waveform.float()
        fbank: torch.Tensor = kaldi.fbank(
            (waveform - waveform.mean()).unsqueeze(0),
            htk_compat=True,
            sample_frequency=self.sample_rate,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=self.num_mel_bins,
            dither=0.0,
            frame_shift=10,
        )
        return fbank

    def frames_for(self, num_samples: int) -> int:
        """Frames of model input produced for a waveform of ``num_samples`` samples."""
        natural = 1 + (num_samples - 400) // 160 if num_samples >= 400 else 0
        if self.target_length is not None:
            return self.target_length
        return max(1, math.ceil(natural / self.multiple_of)) * self.multiple_of

    def __call__(self, waveforms: torch.Tensor, *, frames: int | None = None) -> torch.Tensor:
        """Normalised model input ``[B, 1, T, num_mel_bins]`` for ``[B, N]`` (or ``[N]``) audio.

        ``frames`` overrides :meth:`frames_for`: the fbank is zero-padded or cut
        to exactly that many frames (shared encoding cuts to whole patches).
        """
        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise InvalidInputError(
                f"EATFeatureExtractor expects waveforms of shape [batch, samples]. "
                f"Got shape {tuple(waveforms.shape)} instead."
            )
        length = self.frames_for(int(waveforms.shape[1])) if frames is None else int(frames)
        out = waveforms.new_zeros((waveforms.shape[0], 1, length, self.num_mel_bins))
        for i, waveform in enumerate(waveforms):
            fb = self.fbank(waveform)[:length]
            out[i, 0, : fb.shape[0]] = fb
        return (out - self.mean) / (2.0 * self.std)
