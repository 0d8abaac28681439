"""Shared-context encoding: plan segments, encode each once, pool frames per window.

This module knows embedders only through their public frame hooks (the
:class:`FrameModel` protocol below), so it imports nothing from the embedder
classes and they can call it without an import cycle.

The frame contract (see README, "The frame contract"): a frame model returns,
per requested output, ``[B, T, D]`` time frames only. Frame ``g`` of an input
covers samples ``[offset + g·hop, offset + g·hop + field)`` of that input,
where a negative ``offset`` describes a centred front end that zero-pads
``-offset`` samples on both sides (Whisper: frame t centred on sample 320·t).
A window's vector is the pooling (:attr:`frame_pooling`: mean or max) of the
frames whose receptive field, clipped to the audio, lies inside the window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch

from audio_embed.errors import InvalidInputError

__all__ = [
    "FRAME_POOLINGS",
    "FrameGeometry",
    "FrameModel",
    "FramePooling",
    "min_shared_context",
    "pool_frames",
    "shared_embed_windows",
]

#: How frames become one vector: their mean (default) or their element-wise max.
FramePooling = Literal["mean", "max"]
FRAME_POOLINGS: tuple[FramePooling, ...] = ("mean", "max")


class FrameGeometry(NamedTuple):
    """Where a model's time frames lie in its input, in samples.

    Frame ``g`` sees samples ``[offset + g·hop, offset + g·hop + field)``. With
    ``offset = 0`` (a valid convolution, the wav2vec2 front end) an input of
    ``n >= field`` samples has ``(n - field) // hop + 1`` frames. A negative
    ``offset = -p`` describes a centred front end that zero-pads ``p`` samples
    on both sides of its input (a centred STFT, Whisper's convolutions), giving
    ``(n + 2p - field) // hop + 1`` frames. A field shorter than the hop
    places each frame at a point (``field=1``: frame ``g`` at sample
    ``offset + g·hop``), so a window pools the frames placed inside it: BirdNET's
    time frames, each the second around the centre of a 3 s chunk, are filed
    under their centres. ``max_samples`` is the longest
    input the model accepts (a fixed-size positional table), None when any
    length works.
    """

    hop: int
    field: int
    max_samples: int | None = None
    offset: int = 0

    def num_frames(self, num_samples: int) -> int:
        """Frames the model returns for an input of ``num_samples`` samples."""
        return max(0, (num_samples - 2 * self.offset - self.field) // self.hop + 1)

    def check(self, owner: str) -> None:
        if self.hop <= 0 or self.field < 1 or self.offset > 0:
            raise InvalidInputError(
                f"{owner}.frame_geometry() must have hop > 0, field > 0 and offset <= 0. "
                f"Got {self}."
            )


def min_shared_context(geometry: FrameGeometry) -> int:
    """Fewest samples of context (a multiple of ``hop``) that let every core frame be computed.

    The first frame of a segment's core needs ``-offset`` samples before the
    core; the last needs ``offset + field - hop`` after it. A smaller
    ``shared_context`` would leave the last frames of each core uncomputed;
    shared encoding raises the context to this value.
    """
    hop = geometry.hop
    need = max(0, -geometry.offset, geometry.offset + geometry.field - hop)
    return -(-need // hop) * hop


class FrameModel(Protocol):
    """What shared encoding needs from an embedder (all public)."""

    sample_rate: int
    dim: int
    shared_chunk: float
    shared_context: float
    frame_pooling: FramePooling

    def frame_geometry(self) -> FrameGeometry | None: ...

    def frame_states(
        self, waveforms: torch.Tensor | np.ndarray, layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]: ...

    def auto_batch_size(self, seconds: float) -> int: ...

    def embed_windows(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        *,
        batch_size: int | None = ...,
        on_batch: Callable[[int], None] | None = ...,
        encoding: Literal["per_window", "shared"] = ...,
    ) -> np.ndarray: ...


def pool_frames(frames: torch.Tensor, pooling: FramePooling) -> torch.Tensor:
    """Pool ``[B, T, D]`` frames over time: their mean or element-wise max."""
    if pooling == "max":
        return frames.amax(dim=1)
    return frames.mean(dim=1)


def _segments(
    t0: int, t1: int, n: int, core: int, context: int, hop: int
) -> list[tuple[int, int, int, int]]:
    """Tile ``[t0, t1)`` with cores of about ``core`` samples; add ``context`` on each side.

    Returns ``(s0, s1, u0, u1)``: the segment's input ``[s0, s1)`` (clipped to
    ``[0, n)``) and the core ``[u0, u1)`` of frame-grid positions it
    contributes. Core starts and contexts are multiples of ``hop``, so every
    segment's frame grid is the global one.
    """
    span = t1 - t0
    count = max(1, math.ceil(span / core))
    step = max(hop, math.ceil(span / count / hop) * hop)
    bounds = [t0 + i * step for i in range(count) if t0 + i * step < t1] + [t1]
    return [
        (max(0, u0 - context), min(n, u1 + context), u0, u1)
        for u0, u1 in itertools.pairwise(bounds)
    ]


def _window_frames(
    geometry: FrameGeometry, first: np.ndarray, length: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)``: the global frames whose field (clipped to the audio) lies in each window."""
    hop, field, offset = geometry.hop, geometry.field, geometry.offset
    lo = np.where(first <= 0, 0, -(-(first - offset) // hop))
    end = np.minimum(first + length, n)
    hi = np.where(end >= n, geometry.num_frames(n), (end - offset - field) // hop + 1)
    return lo, np.minimum(hi, geometry.num_frames(n))


def _plan(
    model: FrameModel, geometry: FrameGeometry, lo: np.ndarray, hi: np.ndarray, n: int
) -> tuple[int, list[tuple[int, int, int, int]]]:
    """The first global frame and the segments that compute frames ``[min lo, max hi)``."""
    sr, hop = model.sample_rate, geometry.hop
    least = min_shared_context(geometry)
    context = max(0, math.ceil(model.shared_context * sr / hop)) * hop
    core = max(1, round(model.shared_chunk * sr / hop)) * hop
    if geometry.max_samples is not None:  # context at most a quarter of the longest input
        context = min(context, max(0, (geometry.max_samples - geometry.field) // (4 * hop)) * hop)
    context = max(context, least)
    if geometry.max_samples is not None:
        room = (geometry.max_samples - 2 * context) // hop * hop
        if room < hop:
            raise InvalidInputError(
                f"{type(model).__name__}: shared_context ({context} samples) leaves no room "
                f"for a segment core within max_samples ({geometry.max_samples})."
            )
        core = max(hop, min(core, room))
    base = int(lo.min())
    return base, _segments(base * hop, int(hi.max()) * hop, n, core, context, hop)


def _valid_range(geometry: FrameGeometry, s0: int, s1: int, n: int, count: int) -> tuple[int, int]:
    """Frames ``[j0, j1)`` of segment ``[s0, s1)`` whose field lies in it (or past the audio)."""
    hop, field, offset = geometry.hop, geometry.field, geometry.offset
    j0 = 0 if s0 == 0 else -(offset // hop)
    j1 = count if s1 >= n else min(count, (s1 - s0 - offset - field) // hop + 1)
    return j0, j1


def shared_embed_windows(
    model: FrameModel,
    audio: np.ndarray,
    starts: np.ndarray,
    window: float,
    *,
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Shared-context window vectors of ``model`` (which must have a frame geometry).

    The frames the windows need are computed in segments (cores of
    ``model.shared_chunk`` seconds plus at least ``model.shared_context``
    seconds of context on each side, raised to :func:`min_shared_context`);
    each segment is encoded once and keeps the frames of its core; each window
    pools (``model.frame_pooling``) the frames whose field lies inside it.
    ``model.frame_states(x)`` may return several outputs (a multi-layer
    embedder): their pooled vectors are concatenated in order. A window with no
    frame inside (audio shorter than one field) is encoded per window.

    With zero context and ``shared_chunk`` equal to the window (a multiple of
    the hop), windows on multiples of the window of a valid-convolution model
    are encoded exactly as per window.
    """
    geometry = model.frame_geometry()
    if geometry is None:
        raise InvalidInputError(f"{type(model).__name__} has no frame geometry.")
    geometry.check(type(model).__name__)
    sr = model.sample_rate
    audio = np.asarray(audio, dtype=np.float32)
    starts = np.asarray(starts, dtype=np.float64)
    n, length = len(audio), round(window * sr)
    out = np.empty((len(starts), model.dim), dtype=np.float32)
    if len(starts) == 0:
        return out
    first = np.round(starts * sr).astype(np.int64)
    lo, hi = _window_frames(geometry, first, length, n)
    has = hi > lo
    ok = has.copy()
    if has.any():
        base, segments = _plan(model, geometry, lo[has], hi[has], n)
        n_frames = int(hi[has].max()) - base
        frames, valid = _encode_segments(
            model,
            geometry,
            audio,
            segments,
            base,
            n_frames,
            batch_size,
            length,
            _progress(on_batch, has, hi - base),
        )
        if frames:
            ok = _pool_windows(model, frames, valid, lo - base, hi - base, has, out)
        else:
            ok = np.zeros_like(has)
    for pick, report in ((~has, on_batch), (has & ~ok, None)):
        if pick.any():
            out[pick] = model.embed_windows(
                audio,
                starts[pick],
                window,
                batch_size=batch_size,
                on_batch=report,
                encoding="per_window",
            )
    return out


def _progress(
    on_batch: Callable[[int], None] | None, has: np.ndarray, done_at: np.ndarray
) -> Callable[[int, bool], None]:
    """Report windows once all their frames are computed (``frontier`` = frames done)."""
    reported = [0]
    total = int(has.sum())
    until = np.where(has, done_at, np.iinfo(np.int64).max)

    def report(frontier: int, last: bool) -> None:
        if on_batch is None:
            return
        newly = total - reported[0] if last else int((until <= frontier).sum()) - reported[0]
        if newly > 0 or last:
            on_batch(max(newly, 0))
            reported[0] += max(newly, 0)

    return report


def _encode_segments(
    model: FrameModel,
    geometry: FrameGeometry,
    audio: np.ndarray,
    segments: list[tuple[int, int, int, int]],
    base: int,
    n_frames: int,
    batch_size: int | None,
    length: int,
    report: Callable[[int, bool], None],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    hop, n = geometry.hop, len(audio)
    segments = [s for s in segments if geometry.num_frames(s[1] - s[0]) > 0]
    longest = max((s[1] - s[0] for s in segments), default=geometry.field)
    if batch_size is None:
        per_call = model.auto_batch_size(longest / model.sample_rate)
    else:  # the audio of batch_size windows per call
        per_call = max(1, (batch_size * length) // max(longest, 1))
    frames: list[torch.Tensor] = []
    valid = torch.zeros(n_frames, dtype=torch.bool)
    i = 0
    while i < len(segments):
        size = segments[i][1] - segments[i][0]
        j = i + 1
        while j < len(segments) and j - i < per_call and segments[j][1] - segments[j][0] == size:
            j += 1
        group = segments[i:j]
        states = model.frame_states(np.stack([audio[s0:s1] for s0, s1, _, _ in group]))
        if not frames:
            frames = [torch.zeros(n_frames, s.shape[-1]) for s in states]
        frontier = 0
        for b, (s0, s1, u0, u1) in enumerate(group):
            j0, j1 = _valid_range(geometry, s0, s1, n, int(states[0].shape[1]))
            g0 = s0 // hop
            lo_j, hi_j = max(j0, u0 // hop - g0), min(j1, -(-u1 // hop) - g0)
            if hi_j <= lo_j:
                continue
            dst = slice(g0 + lo_j - base, g0 + hi_j - base)
            for f, state in zip(frames, states, strict=True):
                f[dst] = state[b, lo_j:hi_j].detach().float().cpu()
            valid[dst] = True
            frontier = max(frontier, g0 + hi_j - base)
        report(frontier, j == len(segments))
        i = j
    if not segments:
        report(0, True)
    return frames, valid


def _pool_windows(
    model: FrameModel,
    frames: list[torch.Tensor],
    valid: torch.Tensor,
    lo: np.ndarray,
    hi: np.ndarray,
    has: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Pool each window's computed frames into ``out``; returns which windows had any."""
    n_frames = int(valid.shape[0])
    w_lo, w_hi = np.clip(lo, 0, n_frames), np.clip(hi, 0, n_frames)
    seen = np.concatenate([[0], np.cumsum(valid.numpy(), dtype=np.int64)])
    counts = seen[w_hi] - seen[w_lo]
    ok: np.ndarray = has & (counts > 0)
    rows = np.flatnonzero(ok)
    col = 0
    for f in frames:
        width = int(f.shape[1])
        if not len(rows):
            pass
        elif model.frame_pooling == "max":
            masked = f.masked_fill(~valid[:, None], -torch.inf)
            pooled = torch.stack([masked[w_lo[r] : w_hi[r]].amax(0) for r in rows])
        else:  # window means from prefix sums (float64); uncomputed frames are zero
            sums = torch.cumsum(f, 0, dtype=torch.float64)
            top = torch.from_numpy(w_hi[rows] - 1)
            bottom = torch.from_numpy(w_lo[rows] - 1)
            below = sums[bottom.clamp_min(0)].masked_fill_((bottom < 0)[:, None], 0.0)
            pooled = (sums[top] - below) / torch.from_numpy(counts[rows]).double()[:, None]
        if len(rows):
            out[rows, col : col + width] = pooled.float().numpy()
        col += width
    if col != model.dim:
        raise InvalidInputError(
            f"{type(model).__name__}.frame_states returned {col} features per frame in all; "
            f"its dim is {model.dim}."
        )
    return ok
