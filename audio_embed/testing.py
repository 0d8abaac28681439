"""Contract checks any embedder can run, the way scikit-learn offers ``check_estimator``.

Call :func:`check_embedder` in the test of a new model (built with random
weights, as small as you like)::

    from audio_embed.testing import check_embedder

    def test_my_model_keeps_the_contract() -> None:
        check_embedder(MyEmbedder(tiny=True))

It raises ``AssertionError`` naming the first broken rule, and returns the
names of the checks it ran. Float comparisons are relative to the values'
magnitude (``rtol``), so they hold on any CPU and thread count.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from audio_embed.embedders.base import Embedder, LayeredEmbedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.embedders.shared import FrameGeometry
from audio_embed.errors import InvalidInputError

__all__ = ["check_embedder"]


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    scale = max(1.0, float(expected.abs().max()))
    err = float((actual.float() - expected.float()).abs().max()) / scale
    if err > rtol:
        raise AssertionError(f"{what}: max abs difference / magnitude {err:.3g} > {rtol:g}")


def _check_embed(emb: Embedder, x: torch.Tensor, rtol: float) -> torch.Tensor:
    vectors = emb.embed(x)
    if tuple(vectors.shape) != (x.shape[0], emb.dim) or vectors.dtype != torch.float32:
        geometry = emb.frame_geometry()
        hint = (
            " (the frame count: do the frames come as [B, D, T] instead of [B, T, D]?)"
            if geometry is not None
            and vectors.ndim == 2
            and int(vectors.shape[1]) == geometry.num_frames(int(x.shape[1]))
            else ""
        )
        raise AssertionError(
            f"embed() must return float32 [batch, dim] = [{x.shape[0]}, {emb.dim}]; "
            f"got {vectors.dtype} {tuple(vectors.shape)}{hint}"
        )
    if not bool(torch.isfinite(vectors).all()):
        raise AssertionError("embed() returned NaN or infinite values")
    _close(emb.embed(x[1:2]), vectors[1:2], rtol, "embed() of one waveform vs in a batch")
    return vectors


def _check_refusals(emb: Embedder, x: torch.Tensor) -> None:
    bad = x.clone()
    bad[0, 0] = float("nan")
    for what, batch, rate in (
        ("NaN input", bad, None),
        ("a wrong sample rate", x, emb.sample_rate + 1),
    ):
        try:
            emb.embed(batch, sample_rate=rate)
        except InvalidInputError:
            continue
        raise AssertionError(f"embed() accepted {what} instead of raising InvalidInputError")


def _check_config(emb: Embedder) -> None:
    config = emb.config()
    text = json.dumps(config, sort_keys=True)
    if json.loads(text) != config:
        raise AssertionError("config() must be plain JSON (it changed in a JSON round trip)")
    for key in ("name", "dim", "settings", "layers", "frame_pooling", "weights"):
        if key not in config:
            raise AssertionError(f"config() lacks {key!r}")
    if config["name"] != emb.name or config["dim"] != emb.dim:
        raise AssertionError("config() must carry the embedder's name and dim")
    if emb.cache_id() != emb.cache_id() or emb.config() != config:
        raise AssertionError("config() and cache_id() must be stable across calls")


def _check_layers(emb: LayeredEmbedder, x: torch.Tensor, plain: torch.Tensor, rtol: float) -> None:
    total = int(emb.num_layers or 0)
    states = emb.hidden_states(x)
    if len(states) != total or any(s.ndim != 3 or s.shape[0] != x.shape[0] for s in states):
        raise AssertionError(f"hidden_states() must return {total} tensors [B, T, D]")
    first = emb.hidden_states(x, num_layers=1)
    if len(first) != 1:
        raise AssertionError("hidden_states(num_layers=1) must return one tensor")
    _close(first[0], states[0], rtol, "hidden_states(num_layers=1) vs block 1 of all")
    own = emb.embedding_layer
    if not 1 <= own <= total:
        raise AssertionError(f"embedding_layer must be a block in 1..{total}. Got {own}.")
    last = emb.embed_layers(x, [own])
    _close(last, plain, rtol, f"embed_layers([{own}], the embedding's block) vs embed()")
    multi = MultiLayerEmbedder(emb, layers=[1, total]).embed(x)
    if own == total:
        _close(multi[:, emb.dim :], plain, rtol, "last slice of the _ML embedding vs embed()")
    _close(multi[:, : emb.dim], emb.embed_layers(x, [1]), rtol, "_ML slice 1 vs block 1")


def _check_geometry(emb: Embedder) -> None:
    geometry = emb.frame_geometry()
    if geometry is None:
        return
    try:
        geometry.check(type(emb).__name__)
    except InvalidInputError as exc:
        raise AssertionError(str(exc)) from None


def _geometry_hint(geometry: FrameGeometry, n: int, got: int) -> str:
    """What geometry would give ``got`` frames of ``n`` samples: a centring offset, or a hop."""
    for pad in range(geometry.field + 1):
        if geometry._replace(offset=-pad).num_frames(n) == got:
            why = (
                "a centred front end, e.g. an STFT with center=True, pads n_fft // 2 "
                "samples on both sides"
                if pad
                else "the frames start at sample 0, no padding"
            )
            return f" (offset={-pad} would give {got}: {why})"
    hops = [h for h in range(1, n + 1) if geometry._replace(hop=h).num_frames(n) == got]
    if not hops:
        return ""
    what = f"hop={hops[0]}" if len(hops) == 1 else f"a hop of {hops[0]} to {hops[-1]}"
    return f" ({what} would give {got})"


def _check_frames(emb: Embedder, x: torch.Tensor, plain: torch.Tensor, rtol: float) -> None:
    geometry = emb.frame_geometry()
    if geometry is None:
        return
    frames = emb.frame_states(x)
    if not frames or any(f.ndim != 3 or f.shape[0] != x.shape[0] for f in frames):
        raise AssertionError("frame_states() must return [B, T, D] tensors")
    n = int(x.shape[1])
    expected_t = geometry.num_frames(n)
    counts = [int(f.shape[1]) for f in frames]
    if any(t != expected_t for t in counts):
        raise AssertionError(
            f"frame_states() of {n} samples must have {expected_t} frames "
            f"({geometry}); got {counts}{_geometry_hint(geometry, n, counts[0])}"
        )
    pooled = torch.cat([emb.pool(f) for f in frames], dim=-1)
    _close(pooled, plain, rtol, "pool(frame_states()) vs embed()")
    audio = x[0].numpy()
    window = x.shape[1] / emb.sample_rate / 2
    starts = np.array([0.0, window / 2])
    shared = emb.embed_windows(audio, starts, window, encoding="shared")
    if shared.shape != (2, emb.dim) or not np.isfinite(shared).all():
        raise AssertionError("embed_windows(encoding='shared') must return finite [n, dim]")


def check_embedder(
    emb: Embedder,
    *,
    seconds: float = 3.0,
    rtol: float = 1e-4,
    seed: int = 0,
) -> list[str]:
    """Run the library's contract checks on ``emb``; return the names of those run.

    Checks: ``embed`` returns finite float32 ``[B, dim]`` and does not depend
    on batch neighbours; NaN input and a wrong sample rate raise
    ``InvalidInputError``; ``config()`` is stable plain JSON naming the
    embedder; for layered models, ``hidden_states`` has one ``[B, T, D]``
    tensor per block and stops early, the pooled block ``embedding_layer``
    (the last, unless the model says otherwise) equals the embedding and, when
    it is the last, so does the last slice of a :class:`MultiLayerEmbedder`;
    for models with a frame geometry, the geometry is valid (hop > 0, field >
    0, offset <= 0), ``frame_states`` has the frame count the geometry gives,
    pooling it gives the embedding, and shared encoding runs.

    Args:
        emb: the embedder to check (small random weights are fine).
        seconds: length of the test waveforms.
        rtol: tolerance relative to the values' magnitude.
        seed: seed of the test waveforms.
    """
    _check_geometry(emb)
    gen = torch.Generator().manual_seed(seed)
    n = round(seconds * emb.sample_rate)
    x = 0.1 * torch.randn(3, n, generator=gen)
    ran: list[str] = []
    checks: list[tuple[str, Callable[[], object]]] = [
        ("refusals", lambda: _check_refusals(emb, x)),
        ("config", lambda: _check_config(emb)),
    ]
    plain = _check_embed(emb, x, rtol)
    ran.append("embed")
    if isinstance(emb, LayeredEmbedder) and emb.num_layers:
        checks.append(("layers", lambda: _check_layers(emb, x, plain, rtol)))
    if emb.frame_geometry() is not None:
        checks.append(("frames", lambda: _check_frames(emb, x, plain, rtol)))
    for name, check in checks:
        check()
        ran.append(name)
    return ran
