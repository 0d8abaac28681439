"""Shared-context sliding windows: each stretch of audio encoded once, frames pooled per window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SR
from tiny_models import tiny_wav2vec2, tiny_wavlm

import audio_embed.scanner.streaming as scanner_streaming
from audio_embed import (
    AudioDecodeError,
    InvalidInputError,
    LayeredEmbedder,
    LogMelEmbedder,
    MultiLayerEmbedder,
    TorchaudioEmbedder,
)
from audio_embed.cache import EmbeddingCache
from audio_embed.demo import make_demo_set
from audio_embed.embedders.ast import ASTEmbedder
from audio_embed.embedders.base import Embedder, FrameGeometry
from audio_embed.embedders.beats import BEATsEmbedder, load_beats_checkpoint
from audio_embed.embedders.eat import EATEmbedder
from audio_embed.formats import read_markers
from audio_embed.scanner import Recording, Scanner, ScanResult
from audio_embed.windows import SlidingWindows, TargetedWindows

DATA = Path(__file__).parent / "data"


def _w2v2() -> LayeredEmbedder:
    return TorchaudioEmbedder(model=tiny_wav2vec2(layers=4), device="cpu")


def _wavlm() -> LayeredEmbedder:
    return TorchaudioEmbedder(model=tiny_wavlm(), device="cpu")


def _beats() -> LayeredEmbedder:
    return BEATsEmbedder(model=load_beats_checkpoint(DATA / "beats_tiny.pt"), device="cpu")


FACTORIES = {"wav2vec2": _w2v2, "wavlm": _wavlm, "beats": _beats}


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(40 * SR) / SR
    chirps = 0.2 * np.sin(2 * np.pi * (300 + 40 * t) * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    return (0.05 * rng.standard_normal(len(t)) + chirps).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return out


class LocalFrames(Embedder):
    """A toy frame model: frame g is (mean, mean square) of the samples in its field.

    Frames depend on their own field only, so shared encoding must give exactly the
    pooled frames of the whole audio, however it cuts segments. ``offset < 0`` is a
    centred front end (zero-padded by ``-offset`` on both sides, like Whisper's).
    """

    name = "LOCAL"
    dim = 2

    def __init__(self, hop: int, field: int, offset: int = 0, pooling: str = "mean") -> None:
        self.geometry = FrameGeometry(hop=hop, field=field, offset=offset)
        self.frame_pooling = pooling  # type: ignore[assignment]
        self.min_samples = field

    def frame_geometry(self) -> FrameGeometry:
        return self.geometry

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        pad = -self.geometry.offset
        x = torch.nn.functional.pad(waveforms.double(), (pad, pad))
        fields = x.unfold(1, self.geometry.field, self.geometry.hop)
        return [torch.stack([fields.mean(-1), fields.square().mean(-1)], dim=-1)]

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encode_frames(waveforms, None)[0])


def _by_hand(
    model: LocalFrames, audio: np.ndarray, starts: np.ndarray, window: float
) -> np.ndarray:
    """Pool the whole audio's frames whose field (clipped to the audio) lies in each window."""
    g = model.geometry
    frames = model.encode_frames(torch.from_numpy(audio)[None], None)[0][0].numpy()
    assert len(frames) == g.num_frames(len(audio))
    first = g.offset + np.arange(len(frames)) * g.hop
    lo_edge, hi_edge = np.maximum(first, 0), np.minimum(first + g.field, len(audio))
    out = []
    for s in starts:
        a = round(s * SR)
        b = min(a + round(window * SR), len(audio))
        inside = (lo_edge >= a) & (hi_edge <= b)
        picked = frames[inside]
        out.append(picked.max(0) if model.frame_pooling == "max" else picked.mean(0))
    return np.stack(out)


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize(
    "hop, field, offset",
    # wav2vec2's front end; a centred one (Whisper's); frames placed at points (BirdNET's)
    [(320, 400, 0), (320, 1040, -520), (320, 1, 0)],
    ids=["valid", "centred", "points"],
)
def test_shared_is_exactly_the_pooled_frames_inside_each_window(
    audio: np.ndarray, hop: int, field: int, offset: int, pooling: str
) -> None:
    """Segments of 1 s and no context asked for: the context is raised to what the
    geometry needs, so no frame is lost at segment edges (mean or max pooling)."""
    model = LocalFrames(hop, field, offset, pooling)
    model.shared_chunk, model.shared_context = 1.0, 0.0
    least = max(-offset, offset + field - hop)
    assert model.shared_settings()["context"] * SR >= least
    piece = audio[: 12 * SR]
    starts = np.arange(0.0, 11.0, 0.35)
    shared = model.embed_windows(piece, starts, 2.0, encoding="shared", batch_size=3)
    np.testing.assert_allclose(shared, _by_hand(model, piece, starts, 2.0), rtol=1e-6, atol=1e-7)


def test_per_window_pools_frames_with_the_chosen_pooling(audio: np.ndarray) -> None:
    x = torch.from_numpy(audio[:16000])[None]
    mean, peak = LocalFrames(320, 400), LocalFrames(320, 400, pooling="max")
    frames = mean.frame_states(x)[0]
    torch.testing.assert_close(mean.embed(x), frames.mean(1))
    torch.testing.assert_close(peak.embed(x), frames.amax(1))


@pytest.mark.parametrize("name", FACTORIES)
def test_shared_is_close_to_per_window(name: str, audio: np.ndarray) -> None:
    embedder = FACTORIES[name]()
    starts = SlidingWindows(8.0, 1.0).starts(len(audio) / SR)
    per_window = embedder.embed_windows(audio, starts, 8.0)
    shared = embedder.embed_windows(audio, starts, 8.0, encoding="shared")
    assert shared.shape == per_window.shape and shared.dtype == np.float32
    assert cosine(shared, per_window).min() > 0.99


@pytest.mark.parametrize("name", FACTORIES)
def test_multilayer_is_shared_with_its_blocks(name: str, audio: np.ndarray) -> None:
    base = FACTORIES[name]()
    ml = MultiLayerEmbedder(base, layers=[1, -1])
    starts = np.arange(0.0, 20.0, 1.0)
    shared = ml.embed_windows(audio, starts, 8.0, encoding="shared")
    per_window = ml.embed_windows(audio, starts, 8.0)
    assert shared.shape == per_window.shape == (len(starts), 2 * base.dim)
    for k in range(2):
        block = slice(k * base.dim, (k + 1) * base.dim)
        assert cosine(shared[:, block], per_window[:, block]).min() > 0.99
    # the last block (post-LN models: the encoder output) is the plain embedding
    last = MultiLayerEmbedder(base, layers=[-1]).embed_windows(
        audio, starts, 8.0, encoding="shared"
    )
    plain = base.embed_windows(audio, starts, 8.0, encoding="shared")
    np.testing.assert_allclose(last, plain, rtol=1e-4, atol=1e-5)


def test_frame_geometry_of_the_front_ends() -> None:
    assert _w2v2().frame_geometry() == FrameGeometry(hop=320, field=400)
    assert _beats().frame_geometry() == FrameGeometry(hop=2560, field=2800)
    e = _w2v2()
    for n in (400, 719, 720, 16000):
        (states,) = e.frame_states(torch.zeros(1, n))
        assert states.shape[1] == (n - 400) // 320 + 1


@pytest.mark.parametrize("layer_norm_first", [False, True], ids=["group-norm", "layer-norm"])
def test_front_end_in_pieces_equals_the_whole(layer_norm_first: bool) -> None:
    embedder = TorchaudioEmbedder(
        model=tiny_wav2vec2(layers=2, layer_norm_first=layer_norm_first), device="cpu"
    )
    x = 0.1 * torch.randn(2, 3 * SR + 123, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = embedder.model.feature_extractor(x, None)[0]
        pieces = embedder.front_end(x, piece_frames=7)
    torch.testing.assert_close(pieces, whole, rtol=1e-4, atol=1e-6)


def test_short_audio_pools_the_frames_it_has(audio: np.ndarray) -> None:
    embedder = _w2v2()
    short = audio[: 3 * SR]
    shared = embedder.embed_windows(short, np.zeros(1), 8.0, encoding="shared")
    whole = embedder.embed(short).numpy()  # the 3 s alone, no zero padding
    assert cosine(shared, whole)[0] > 0.999
    # shorter than one receptive field: encoded alone, zero-padded, as per window
    tiny = audio[:300]
    np.testing.assert_array_equal(
        embedder.embed_windows(tiny, np.zeros(1), 8.0, encoding="shared"),
        embedder.embed_windows(tiny, np.zeros(1), 8.0),
    )


class _NoHooks(LayeredEmbedder):
    """A layered model without the shared-encoding hooks."""

    name = "NO_HOOKS"
    dim = 4
    num_layers = 4

    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        x = waveforms.unfold(1, 400, 320)[..., :4]
        return [x * (k + 1) for k in range(num_layers)]


@pytest.mark.parametrize("embedder", [_NoHooks(), LogMelEmbedder()], ids=["no-hooks", "logmel"])
def test_models_without_shared_encoding_fall_back(
    embedder: LayeredEmbedder | LogMelEmbedder, audio: np.ndarray
) -> None:
    starts = np.arange(0.0, 30.0, 1.0)
    np.testing.assert_array_equal(
        embedder.embed_windows(audio, starts, 8.0, encoding="shared"),
        embedder.embed_windows(audio, starts, 8.0),
    )
    assert embedder.shared_settings() == {}
    if isinstance(embedder, LayeredEmbedder):
        ml = MultiLayerEmbedder(embedder, layers=[2, 4])
        np.testing.assert_array_equal(
            ml.embed_windows(audio, starts, 8.0, encoding="shared"),
            ml.embed_windows(audio, starts, 8.0),
        )


def test_unknown_encoding_is_refused(audio: np.ndarray) -> None:
    for embedder in (_w2v2(), LogMelEmbedder(), MultiLayerEmbedder(_w2v2(), layers=2)):
        with pytest.raises(InvalidInputError, match="'encoding'"):
            embedder.embed_windows(audio, np.zeros(1), 8.0, encoding="both")  # type: ignore[arg-type]


def test_progress_counts_every_window_once(audio: np.ndarray) -> None:
    embedder = _w2v2()
    embedder.shared_chunk = 5.0
    seen: list[int] = []
    starts = np.arange(0.0, 32.5, 0.5)
    embedder.embed_windows(audio, starts, 8.0, encoding="shared", on_batch=seen.append)
    assert sum(seen) == len(starts) and len(seen) > 1


def test_batch_size_does_not_change_the_vectors(audio: np.ndarray) -> None:
    embedder = _w2v2()
    embedder.shared_chunk = 5.0
    starts = np.arange(0.0, 30.0, 1.0)
    one = embedder.embed_windows(audio, starts, 8.0, encoding="shared", batch_size=1)
    many = embedder.embed_windows(audio, starts, 8.0, encoding="shared", batch_size=64)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)
    assert embedder.auto_batch_size(8.0) >= 1


# ---------------------------------------------------------------------------- scanner


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_demo_set(
        tmp_path_factory.mktemp("demo"),
        n_train=2,
        n_test=2,
        seconds=30,
        targets_per_file=1,
        distractors_per_file=3,
        seed=3,
    )


def _scanner(encoding: str, cache: EmbeddingCache | None = None) -> Scanner:
    return Scanner(
        _w2v2(),
        scan_windows=SlidingWindows(4.0, 1.0, encoding),  # type: ignore[arg-type]
        train_windows=TargetedWindows(4.0, neg_margin=2.0),
        cache=cache,
    )


def test_streamed_shared_vectors_match_one_call(
    audio: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanner = _scanner("shared")
    monkeypatch.setattr(scanner_streaming, "BLOCK_SECONDS", 7.0)
    streamed = scanner.sliding_embeddings(audio, sample_rate=SR)
    whole = scanner.embedder.embed_windows(audio, streamed.starts, 4.0, encoding="shared")
    # Segments are cut differently (block by block), so not bit for bit.
    assert cosine(streamed.embeddings, whole).min() > 0.99
    per_window = scanner.embedder.embed_windows(audio, streamed.starts, 4.0)
    assert cosine(streamed.embeddings, per_window).min() > 0.99


def test_streaming_keeps_frames_on_the_file_grid(
    audio: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame hop (0.5 s) that the window hop's samples (0.1 s) do not divide: each
    streamed block starts on the frame grid, so the vectors are those of one call."""
    model = LocalFrames(8000, 1)  # frames placed at points, like BirdNET's time frames
    scanner = Scanner(model, scan_windows=SlidingWindows(1.0, 0.1, "shared"))
    monkeypatch.setattr(scanner_streaming, "BLOCK_SECONDS", 7.0)
    streamed = scanner.sliding_embeddings(audio[: 30 * SR], sample_rate=SR)
    whole = model.embed_windows(audio[: 30 * SR], streamed.starts, 1.0, encoding="shared")
    np.testing.assert_allclose(streamed.embeddings, whole, rtol=1e-5, atol=1e-6)


def test_scanner_end_to_end_shared(demo: object, tmp_path: Path) -> None:
    markers = read_markers(demo.markers_csv)  # type: ignore[attr-defined]
    cache = EmbeddingCache(tmp_path / "cache")
    scanner = _scanner("shared", cache).fit([Recording(f, m) for f, m in markers.items()])
    results = list(scanner.scan_many(demo.test_files))  # type: ignore[attr-defined]
    assert [p for p, _ in results] == [str(f) for f in demo.test_files]  # type: ignore[attr-defined]
    for _, result in results:
        assert not isinstance(result, Exception)
        np.testing.assert_array_equal(result.starts, np.arange(0.0, 27.0))
        assert np.all((result.probabilities >= 0) & (result.probabilities <= 1))
    # per-window and shared vectors are cached apart
    per_window = _scanner("per_window", cache)
    assert per_window._settings() != scanner._settings()
    assert scanner._settings()["shared"] == {"chunk": 20.0, "context": 2.0}
    saved = Scanner.load(scanner.save(tmp_path / "s.scanner"), embedder=_w2v2())
    assert saved.scan_windows.encoding == "shared" and saved.batch_size is None


def test_scan_many_reports_a_bad_file_and_goes_on(
    demo: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    markers = read_markers(demo.markers_csv)  # type: ignore[attr-defined]
    scanner = Scanner(
        LogMelEmbedder(),
        scan_windows=SlidingWindows(8.0, 1.0, "shared"),
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    scanner.fit([Recording(f, m) for f, m in markers.items()])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEfmt garbage" * 10)
    good = [str(f) for f in demo.test_files]  # type: ignore[attr-defined]
    out = dict(scanner.scan_many([good[0], bad, good[1]]))
    assert list(out) == [good[0], str(bad), good[1]]
    assert isinstance(out[str(bad)], AudioDecodeError)
    first = {f: out[f] for f in good}

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(scanner_streaming, "stream_audio", no_decoding)
    for path, result in scanner.scan_many(good):
        assert isinstance(result, ScanResult)
        np.testing.assert_array_equal(result.probabilities, first[path].probabilities)  # type: ignore[union-attr]


# ------------------------------------------------- spectrogram transformers (EAT, AST)


def _tiny_ast() -> ASTEmbedder:
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_length=100,  # 1 s: shared segments must fit the positional table
        num_mel_bins=32,
    )
    return ASTEmbedder(model=ASTModel(config).eval(), device="cpu")


def _tiny_eat(**kwargs: object) -> EATEmbedder:
    return EATEmbedder(DATA / "eat_tiny", device="cpu", **kwargs)  # type: ignore[arg-type]


def _without_token_mixing(embedder: LayeredEmbedder, names: tuple[str, ...]) -> LayeredEmbedder:
    """Zero the attention output and MLP output projections: every block is then a
    per-token map, so a frame depends on its own receptive field only."""
    zeroed = 0
    with torch.no_grad():
        for name, param in embedder.model.named_parameters():  # type: ignore[attr-defined]
            if any(part in name for part in names):
                param.zero_()
                zeroed += 1
    assert zeroed >= 4 * int(embedder.num_layers or 0)
    return embedder


SPECTROGRAM = {
    "eat": lambda: _without_token_mixing(_tiny_eat(target_length=None), ("attn.proj.", "mlp.fc2.")),
    "ast": lambda: _without_token_mixing(
        _tiny_ast(), ("attention.o_proj.", "mlp.fc2.", "attention.output.dense.", "output.dense.")
    ),
}


@pytest.mark.parametrize("name", SPECTROGRAM)
def test_frames_are_in_time_order_with_their_receptive_fields(name: str) -> None:
    """Frame t of frame_states sees samples [t·hop, t·hop + field) and nothing else:
    changing the audio from sample p on leaves exactly the frames that end by p."""
    embedder = SPECTROGRAM[name]()
    geometry = embedder.frame_geometry()
    assert geometry is not None
    hop, field = geometry.hop, geometry.field
    n = field + 5 * hop
    x = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    (before,) = embedder.frame_states(x)
    assert before.shape[1] >= (n - field) // hop + 1 == 6  # AST also returns padded steps
    for p in (field + hop, field + 3 * hop + hop // 2):
        y = x.clone()
        y[0, p:] += 0.2
        unchanged = (p - field) // hop + 1  # the frames with t·hop + field <= p
        for layers in (None, (1, int(embedder.num_layers or 0))):
            a_states, b_states = (
                embedder.frame_states(x, layers),
                embedder.frame_states(y, layers),
            )
            for a, b in zip(a_states, b_states, strict=True):
                torch.testing.assert_close(a[:, :unchanged], b[:, :unchanged])
                assert not torch.allclose(a[:, unchanged], b[:, unchanged])


@pytest.mark.parametrize("name", ["eat", "ast"])
def test_shared_windows_may_be_longer_than_the_positional_table(
    name: str, audio: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """Per window, EAT refuses and AST cuts inputs longer than their positional
    tables (tiny models: 2.56 s and 1 s); shared encoding pools the frames of
    segments that fit, so any window length works."""
    embedder = _tiny_eat(target_length=None) if name == "eat" else _tiny_ast()
    starts = np.arange(0.0, 20.0, 2.0)
    shared = embedder.embed_windows(audio, starts, 4.0, encoding="shared")
    assert shared.shape == (len(starts), embedder.dim) and np.isfinite(shared).all()
    assert "longer windows" not in caplog.text
    # segments never exceed the table: the model saw no input it would refuse or cut
    geometry = embedder.frame_geometry()
    assert geometry is not None and geometry.max_samples is not None
    if name == "eat":
        with pytest.raises(InvalidInputError, match="at most 256 frames"):
            embedder.embed_windows(audio, starts, 4.0)


def test_eat_cls_pooling_falls_back_to_per_window(audio: np.ndarray) -> None:
    embedder = _tiny_eat(target_length=None, pooling="cls")
    assert embedder.frame_geometry() is None and embedder.shared_settings() == {}
    starts = np.arange(0.0, 10.0, 1.0)
    np.testing.assert_array_equal(
        embedder.embed_windows(audio, starts, 2.0, encoding="shared"),
        embedder.embed_windows(audio, starts, 2.0),
    )


@pytest.mark.parametrize("name", ["eat", "ast"])
def test_spectrogram_shared_is_close_to_per_window(name: str, audio: np.ndarray) -> None:
    """Not equal (other position codes, no padding, more context), but close."""
    embedder = _tiny_eat(target_length=None) if name == "eat" else _tiny_ast()
    window = 2.0 if name == "eat" else 0.8
    starts = SlidingWindows(window, 0.48 if name == "eat" else 0.3).starts(len(audio) / SR)
    per_window = embedder.embed_windows(audio, starts, window)
    shared = embedder.embed_windows(audio, starts, window, encoding="shared")
    assert shared.shape == per_window.shape
    assert cosine(shared, per_window).mean() > 0.9
