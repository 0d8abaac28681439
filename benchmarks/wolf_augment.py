r"""Front-ends and waveform augmentation for LOGMEL on the wolf benchmark.

Runs ``benchmarks/wolf_explore.py``'s pipeline (same labels, classifier,
threshold cross-validation and detection; every option of that script works
here too) with two kinds of additions:

* ``--frontend``: other frame features than the log-mel spectrogram, or more
  statistics per window (a :class:`LogMelEmbedder` subclass, cached under its
  own settings);
* ``--aug-copies N``: new "takes" of each marked sound for training. For each
  positive marker of a training file, the audio from 0.05 s before to 2 s
  after it (faded in and out) is mixed into ``N`` random places of every
  training file (at least 8 s from any marker), with a random gain
  (``--aug-gain``, dB), speed (``--aug-speed``, a factor; resampling, so
  pitch moves with it) and, with ``--aug-eq DB``, two random peaking filters
  of ±DB (``torchaudio.functional.equalizer_biquad``: another microphone).
  The windows around each place are embedded again and the ones holding the
  moved marker are added as positives, normalised and given context as windows
  of the file they were mixed into. Only markers and files of the fit at hand
  are used, so the threshold cross-validation never sees the held-out
  recording.

    .venv/bin/python benchmarks/wolf_augment.py wolf-bench --frontend pcen
    .venv/bin/python benchmarks/wolf_augment.py wolf-bench --aug-copies 2 --aug-speed 0.95,1.05
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np
import torch
import torchaudio
import wolf_explore
from wolf_explore import HOP, WINDOW, Bench, _zscore, parser, run

from audio_embed.audio import load_audio
from audio_embed.augment import MixAugmentation
from audio_embed.classifier import make_base_estimator
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.scanner import STD_FLOOR
from audio_embed.windows import Markers

SR = 16000
FRONTENDS = ("log", "pcen", "log+pcen", "log+extra", "log+top", "log+contrast")


class FrontEnd(LogMelEmbedder):
    """LOGMEL with another frame transform and/or more statistics per window.

    ``pcen``: per-channel energy normalisation of the mel power (Wang et al.
    2017; librosa's defaults: time constant 0.4 s, gain 0.98, bias 2, power
    0.5, eps 1e-6, input scaled as 32-bit integers), hand-written here with
    ``torchaudio.functional.lfilter`` as the smoother (librosa is not
    installed). ``log+extra``: the log-mel statistics plus the spectral shape
    (band mean minus the mean over bands), the mean of the top 20 % frames per
    band, and mean / std / max of spectral flatness, flux and centroid.
    ``log+top``: the log-mel statistics plus the top-20 % mean.
    """

    def __init__(self, frontend: str = "log", **kw: Any) -> None:
        super().__init__(**kw)
        self.variant = frontend
        n = self.n_mels
        self.dim = {"log": 4 * n, "pcen": 4 * n, "log+pcen": 8 * n,
                    "log+extra": 6 * n + 9, "log+top": 5 * n,
                    "log+contrast": 6 * n}[frontend]  # fmt: skip

    def settings(self) -> dict[str, Any]:
        extra = {} if self.variant == "log" else {"frontend": self.variant}
        return super().settings() | extra  # "log" is LOGMEL: its cached vectors

    def pcen(self, waveforms: torch.Tensor) -> torch.Tensor:
        mel = self.melspec(waveforms * 2.0**31)  # [B, M, T]
        t_frames = 0.4 * SR / self.hop_length
        s = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
        a = torch.tensor([1.0, -(1.0 - s)], dtype=mel.dtype)
        b = torch.tensor([s, 0.0], dtype=mel.dtype)
        # E_t = s M_t + (1 - s) E_{t-1} from E_{-1} = M_0 (librosa starts the same way)
        decay = (1.0 - s) ** torch.arange(1, mel.shape[-1] + 1, dtype=mel.dtype)
        smooth = torchaudio.functional.lfilter(mel, a, b, clamp=False) + mel[..., :1] * decay
        out = (mel / (1e-6 + smooth) ** 0.98 + 2.0) ** 0.5 - 2.0**0.5
        return out.transpose(1, 2)

    def frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.variant == "pcen":
            return self.pcen(waveforms)
        log = super().frames(waveforms)
        if self.variant == "log+pcen":
            return torch.cat([log, self.pcen(waveforms)], dim=-1)
        return log

    def statistics(self, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n = self.n_mels
        if self.variant == "log+pcen":
            return torch.cat(
                [LogMelEmbedder.statistics(frames[..., :n]),
                 LogMelEmbedder.statistics(frames[..., n:])], dim=-1)  # fmt: skip
        base = LogMelEmbedder.statistics(frames)
        if self.variant == "log+contrast":
            return torch.cat([base, *contrast(frames)], dim=-1)
        if self.variant not in ("log+extra", "log+top"):
            return base
        k = max(1, frames.shape[1] // 5)
        top = frames.topk(k, dim=1).values.mean(dim=1)
        if self.variant == "log+top":
            return torch.cat([base, top], dim=-1)
        mean = frames.mean(dim=1)
        shape = mean - mean.mean(dim=-1, keepdim=True)
        power = frames.exp()
        flat = frames.mean(-1) - torch.log(power.mean(-1))  # log flatness per frame
        flux = torch.zeros_like(flat)
        flux[:, 1:] = (frames[:, 1:] - frames[:, :-1]).clamp(min=0).mean(-1)
        centroid = (power * torch.arange(n)).sum(-1) / power.sum(-1) / n
        per = [torch.stack([v.mean(1), v.std(1, unbiased=False), v.amax(1)], -1)
               for v in (flat, flux, centroid)]  # fmt: skip
        return torch.cat([base, shape, top, *per], dim=-1)


def contrast(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log+contrast``: each band's peak over its own floor in the window (max minus the
    10th percentile of the log-mel frames: how far the loudest moment stands above the
    window's quietest, whatever the level), and that vector scaled to unit length (its
    shape across bands, the same at any SNR where the sound shows)."""
    c = frames.amax(dim=1) - frames.quantile(0.1, dim=1)
    return c, c / c.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class Augmenter:
    """A pool of augmented positive windows (:class:`MixAugmentation`), filtered per fit."""

    def __init__(self, b: Bench, args: argparse.Namespace, markers: dict[str, Markers]) -> None:
        emb = b.embedder()
        ent = b.entries()
        files = list(markers)
        audio = [load_audio(p, SR) for p in files]
        aug = MixAugmentation(copies=args.aug_copies, gain_db=args.aug_gain,
                              speed=args.aug_speed, eq_db=args.aug_eq, seed=args.aug_seed,
                              step=HOP)  # fmt: skip
        mixed = aug.mix(
            [(a, markers[p].positive) for a, p in zip(audio, files, strict=True)],
            [(a, markers[p].all) for a, p in zip(audio, files, strict=True)],
            SR,
        )
        # unit: (source file, marker time, background file, features of its positive windows)
        self.units: list[tuple[str, float, str, np.ndarray]] = []
        for m in mixed:
            bg = files[m.background]
            e = ent[bg]
            first = round(m.start / HOP)
            rows = np.arange(first, first + 61)  # windows starting within 3 s of the place
            x = emb.embed_windows(m.audio, (rows - first) * HOP, WINDOW)
            std = np.maximum(e.embeddings.std(0), STD_FLOOR)
            z = ((x - e.embeddings.mean(0)) / std).astype(np.float32)
            pos = np.flatnonzero(
                (rows * HOP >= m.marker - WINDOW - 1e-6) & (rows * HOP <= m.marker + 1e-6)
            )
            src, k = m.source
            feats = self._context(z, rows, pos, _zscore(e.embeddings))
            self.units.append((files[src], markers[files[src]].positive[k], bg, feats))

    @staticmethod
    def _context(z: np.ndarray, rows: np.ndarray, pos: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """[z, z - mean of the ±2 s grid rows], the mixed-in rows replacing the file's."""
        g = grid.copy()
        g[rows] = z
        half = 20  # 4 s context at 0.1 s hops: 41 rows
        local = np.stack([g[rows[i] - half : rows[i] + half + 1].mean(0) for i in pos])
        return np.concatenate([z[pos], z[pos] - local], axis=1).astype(np.float32)

    def rows(self, items: list[tuple[str, Markers]]) -> np.ndarray:
        files = {p for p, _ in items}
        pos = {(p, t) for p, m in items for t in m.positive}
        got = [x for s, t, bg, x in self.units if (s, t) in pos and bg in files]
        return np.concatenate(got) if got else np.empty((0, 0), np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    ap.description = __doc__
    ap.add_argument("--frontend", default="log", choices=FRONTENDS)
    ap.add_argument("--aug-copies", type=int, default=0, help="copies per marker and file")
    ap.add_argument("--aug-gain", type=lambda s: [float(v) for v in s.split(",")],
                    default=[-4.0, 4.0], help="gain range in dB, lo,hi")  # fmt: skip
    ap.add_argument("--aug-speed", type=lambda s: [float(v) for v in s.split(",")],
                    default=[1.0, 1.0], help="speed factor range, lo,hi")  # fmt: skip
    ap.add_argument("--aug-eq", type=float, default=0.0, help="±dB of 2 random peaking EQs")
    ap.add_argument("--aug-seed", type=int, default=0)
    ap.add_argument("--aug-bag", type=int, default=1,
                    help="K models, aug seeds SEED..SEED+K-1, scores averaged")  # fmt: skip
    ap.add_argument("--trees-seed", type=int, help="--classifier extratrees/hgb with this seed")
    args = ap.parse_args(argv)
    if args.trees_seed is not None:  # wolf_explore's table seeds them with 42
        seed = args.trees_seed
        wolf_explore._classifier = lambda name: make_base_estimator(name, seed)
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)

    def factory(**kw: Any) -> FrontEnd:
        return FrontEnd(args.frontend, **kw)

    b = Bench(args.bench, args.cache, factory)
    extra = None
    if args.aug_copies:
        markers = dict(b.markers)
        if args.few_shot:  # the same first k markers run() uses
            pts = sorted((f, t) for f, m in markers.items() for t in m.positive)[: args.few_shot]
            markers = {f: Markers(positive=[t for g, t in pts if g == f]) for f, _ in pts}
        if args.aug_bag > 1:  # one model per augmentation seed, scores averaged
            augs = [
                Augmenter(b, argparse.Namespace(**{**vars(args), "aug_seed": args.aug_seed + k}),
                          markers)
                for k in range(args.aug_bag)
            ]  # fmt: skip

            def bagged(items: list[tuple[str, Markers]]) -> Any:
                return [a.rows(items) for a in augs]

            extra = bagged
        else:
            extra = Augmenter(b, args, markers).rows
    row = run(b, args, extra)
    print(json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "bench"}} | row,
                     default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
