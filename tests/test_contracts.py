"""The library's contracts (issue 11): frames, configs, saved scanners, the extension surface."""

from __future__ import annotations

import ast
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SR
from tiny_models import tiny_wav2vec2, tiny_wavlm

import audio_embed
from audio_embed import (
    Embedder,
    InvalidInputError,
    LayeredEmbedder,
    LogMelEmbedder,
    MultiLayerEmbedder,
    ScannerFileError,
    TorchaudioEmbedder,
)
from audio_embed.demo import make_demo_set
from audio_embed.embedders.ast import ASTEmbedder
from audio_embed.embedders.base import FrameGeometry, fingerprint_files
from audio_embed.embedders.beats import BEATsConfig, BEATsEmbedder, load_beats_checkpoint
from audio_embed.embedders.eat import EATEmbedder
from audio_embed.formats import read_markers
from audio_embed.registry import (
    EmbedderSpec,
    create_embedder,
    embedder_from_config,
    get_spec,
    load_plugin,
    register_embedder,
)
from audio_embed.scanner import Recording, Scanner
from audio_embed.testing import check_embedder
from audio_embed.windows import SlidingWindows, TargetedWindows

DATA = Path(__file__).parent / "data"


def _tiny_ast() -> ASTEmbedder:
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_length=400,
        num_mel_bins=32,
    )
    return ASTEmbedder(model=ASTModel(config).eval(), device="cpu")


def _tiny_beats(layer_norm_first: bool) -> BEATsEmbedder:
    if not layer_norm_first:
        return BEATsEmbedder(model=load_beats_checkpoint(DATA / "beats_tiny.pt"), device="cpu")
    cfg = BEATsConfig(
        encoder_layers=4,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=4,
        embed_dim=32,
        layer_norm_first=True,
        deep_norm=False,
        conv_pos=16,
        conv_pos_groups=4,
        num_buckets=32,
        max_distance=64,
    )
    return BEATsEmbedder.from_config(cfg, device="cpu")


#: Every built-in layered family, tiny and random: post-LN and pre-LN wav2vec2 (the
#: LV60K / XLSR / large HuBERT / WavLM large bundles are pre-LN), WavLM, AST, BEATs, EAT.
LAYERED: dict[str, Callable[[], LayeredEmbedder]] = {
    "wav2vec2-post-ln": lambda: TorchaudioEmbedder(model=tiny_wav2vec2(layers=4), device="cpu"),
    "wav2vec2-pre-ln": lambda: TorchaudioEmbedder(
        model=tiny_wav2vec2(layers=4, layer_norm_first=True), device="cpu"
    ),
    "wavlm": lambda: TorchaudioEmbedder(model=tiny_wavlm(), device="cpu"),
    "ast": _tiny_ast,
    "beats": lambda: _tiny_beats(False),
    "beats-pre-ln": lambda: _tiny_beats(True),
    "eat": lambda: EATEmbedder(DATA / "eat_tiny", device="cpu", target_length=None),
    "eat-padded": lambda: EATEmbedder(DATA / "eat_tiny", device="cpu", target_length=256),
}


@pytest.mark.parametrize("name", LAYERED)
def test_frame_contract_of_every_builtin_layered_model(name: str) -> None:
    """pool(frame_states) = embed; the last _ML slice (last block) = embed; T from the geometry."""
    embedder = LAYERED[name]()
    seconds = 2.0 if name.startswith(("ast", "eat")) else 3.0
    assert check_embedder(embedder, seconds=seconds) == [
        "embed",
        "refusals",
        "config",
        "layers",
        "frames",
    ]


def test_pre_ln_final_norm_belongs_to_the_last_block() -> None:
    """The pre-LN encoder output (model(x)) is the last block with the final LayerNorm."""
    embedder = LAYERED["wav2vec2-pre-ln"]()
    x = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = embedder.model(x)[0].mean(dim=1)
    torch.testing.assert_close(embedder.embed(x), reference, rtol=1e-4, atol=1e-5)
    raw = embedder.hidden_states(x)[-1].mean(dim=1)
    assert not torch.allclose(raw, reference, atol=1e-3)  # hidden_states stay raw


def test_eat_cls_pooling_multilayer_slices_are_cls_tokens() -> None:
    embedder = EATEmbedder(DATA / "eat_tiny", device="cpu", target_length=None, pooling="cls")
    x = 0.1 * torch.randn(2, 12000)
    multi = MultiLayerEmbedder(embedder, layers="all").embed(x)
    states = embedder.hidden_states(x)
    torch.testing.assert_close(multi[:, :64], states[0][:, 0])
    torch.testing.assert_close(multi[:, 64:], embedder.embed(x))


class ToyChunks(Embedder):
    """A third-party chunk model (one vector per 0.5 s chunk every 0.25 s, like BirdNET's
    3 s chunks), run by 'another runtime' (numpy weights): a frame model without layers."""

    name = "TOY_CHUNKS"
    dim = 4
    frame_pooling = "max"

    def __init__(self, seed: int = 0, hop: float = 0.25, device: object = None) -> None:
        self.weights = np.random.default_rng(seed).standard_normal((8, 4)).astype(np.float32)
        self.hop = hop
        self.min_samples = 8000

    def settings(self) -> dict[str, Any]:
        return {"hop": self.hop}

    def frame_geometry(self) -> FrameGeometry:
        return FrameGeometry(hop=round(self.hop * SR), field=8000)

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        chunks = waveforms.unfold(1, 8000, round(self.hop * SR))  # [B, T, 8000]
        feats = chunks.reshape(*chunks.shape[:2], 8, 1000).abs().mean(-1)
        return [feats @ torch.from_numpy(self.weights)]

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encode_frames(waveforms, None)[0])


def test_check_embedder_on_a_third_party_chunk_model_and_logmel() -> None:
    assert check_embedder(ToyChunks()) == ["embed", "refusals", "config", "frames"]
    assert check_embedder(LogMelEmbedder()) == ["embed", "refusals", "config"]


def test_check_embedder_catches_a_broken_contract() -> None:
    class Broken(ToyChunks):
        def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
            return super()._embed_batch(waveforms) + 1.0  # not the pooled frames

    with pytest.raises(AssertionError, match="pool\\(frame_states\\(\\)\\) vs embed"):
        check_embedder(Broken())


def test_cache_id_of_a_non_torch_model_follows_weights_and_settings(tmp_path: Path) -> None:
    base = ToyChunks().cache_id()
    assert base == ToyChunks().cache_id()
    assert ToyChunks(seed=1).cache_id() != base  # numpy weights are fingerprinted
    assert ToyChunks(hop=0.5).cache_id() != base  # a setting that changes the vectors
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    a.write_bytes(b"model one")
    b.write_bytes(b"model two")
    assert fingerprint_files(a) != fingerprint_files(b) == fingerprint_files(b)


def test_weights_fingerprint_does_not_depend_on_the_thread_count() -> None:
    """A Ray worker on one thread must see the weights a two-thread driver saved:
    a floating-point sum of a large tensor changes in its last bits with the
    thread count, the fingerprint must not."""

    class Big(LogMelEmbedder):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            self.weights = torch.randn(4_718_592, generator=gen)  # HuBERT's pos_conv size

    threads = torch.get_num_threads()
    prints = []
    try:
        for n in (1, 3, 8):
            torch.set_num_threads(n)
            prints.append(Big().weights_fingerprint())
    finally:
        torch.set_num_threads(threads)
    assert len(set(prints)) == 1
    changed = Big()
    changed.weights[1_000_000] += 1e-6  # one value past the first 64, a tiny change
    assert changed.weights_fingerprint() != prints[0]


# ---------------------------------------------------------------- saved scanners


def _tiny_w2v2_factory(
    *, checkpoint: str | None = None, device: object = None, seed: int = 0, **kw: Any
) -> TorchaudioEmbedder:
    return TorchaudioEmbedder(
        model=tiny_wav2vec2(layers=8, seed=seed), name="TINY_W2V", device="cpu", **kw
    )


register_embedder(
    EmbedderSpec(name="TINY_W2V", factory=_tiny_w2v2_factory, dim=32, num_layers=8),
    overwrite=True,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_demo_set(tmp_path_factory.mktemp("demo"), n_train=2, n_test=1, seconds=64, seed=2)


def _train(embedder: Embedder, demo: Any, encoding: str = "shared") -> Scanner:
    scanner = Scanner(
        embedder,
        scan_windows=SlidingWindows(4, 1, encoding),  # type: ignore[arg-type]
        train_windows=TargetedWindows(4.0, neg_margin=2.0),
    )
    return scanner.fit([Recording(f, m) for f, m in read_markers(demo.markers_csv).items()])


def _probabilities(scanner: Scanner, demo: Any) -> np.ndarray:
    return scanner.scan(demo.test_files[0]).probabilities


@pytest.mark.parametrize(
    "make, encoding",
    [
        (lambda: create_embedder("TINY_W2V_ML", layers=[2, 4, 6, 8]), "shared"),
        (lambda: create_embedder("TINY_W2V"), "per_window"),
        (
            lambda: EATEmbedder(DATA / "eat_tiny", device="cpu", pooling="cls", target_length=256),
            "per_window",
        ),
    ],
    ids=["custom-ML-layers", "per-window", "eat-cls"],
)
def test_scanner_rebuilds_its_embedder_and_scores_identically(
    make: Callable[[], Embedder], encoding: str, demo: Any, tmp_path: Path
) -> None:
    trained = _train(make(), demo, encoding)
    old = os.umask(0o022)
    try:
        path = trained.save(tmp_path / "x.scanner")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert Scanner.read_metadata(path)["format_version"] == 3
    loaded = Scanner.load(path)  # rebuilt from the saved config, nothing passed
    assert loaded.embedder.config() == trained.embedder.config()
    assert loaded.scan_windows.encoding == encoding
    np.testing.assert_array_equal(_probabilities(loaded, demo), _probabilities(trained, demo))


def test_scanner_refuses_other_layers_or_weights_unless_allowed(
    demo: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trained = _train(create_embedder("TINY_W2V_ML", layers=[2, 4, 6, 8]), demo)
    path = trained.save(tmp_path / "ml.scanner")
    quartiles = create_embedder("TINY_W2V_ML")  # blocks 2, 4, 6, 8 of 8 happen to be these
    assert quartiles.config()["layers"] == [2, 4, 6, 8]
    other_layers = create_embedder("TINY_W2V_ML", layers=[1, 3, 5, 7])
    with pytest.raises(ScannerFileError, match="layers: saved \\[2, 4, 6, 8\\]"):
        Scanner.load(path, embedder=other_layers)
    other_weights = create_embedder("TINY_W2V_ML", layers=[2, 4, 6, 8], seed=1)
    with pytest.raises(ScannerFileError, match=r"weights\.fingerprint"):
        Scanner.load(path, embedder=other_weights)
    with pytest.raises(ScannerFileError, match=r"weights\.fingerprint"):
        Scanner.load(path, embedder_kwargs={"seed": 1})  # rebuilt, but from other weights
    Scanner.load(path, embedder=other_weights, allow_mismatch=True)
    assert "another configuration or other weights" in caplog.text


def test_embedder_from_config_restores_settings_and_shared_context() -> None:
    emb = create_embedder("TINY_W2V_ML", layers=[1, 8], normalize_waveform=True)
    emb.shared_chunk, emb.shared_context = 7.0, 1.5
    rebuilt = embedder_from_config(emb.config())
    assert isinstance(rebuilt, MultiLayerEmbedder) and rebuilt.layers == (1, 8)
    assert rebuilt.config() == emb.config()
    assert rebuilt.shared_settings() == {"chunk": 7.0, "context": 1.5}


def test_a_saved_plugin_model_not_loaded_here_names_its_module() -> None:
    # a scanner trained with a model from my_models.py, loaded without --plugin my_models
    config = {
        **LogMelEmbedder().config(),
        "name": "UNLOADED_CROSSINGS",
        "class": "my_models.ZeroCrossings",
    }
    with pytest.raises(
        audio_embed.UnknownEmbedderError,
        match=r"^zc\.scanner: the embedder 'UNLOADED_CROSSINGS' .*load_plugin\('my_models'\).*"
        r"--plugin my_models",
    ):
        embedder_from_config(config, where="zc.scanner")
    config["class"] = "__main__.ZeroCrossings"  # defined in the training script itself
    with pytest.raises(audio_embed.UnknownEmbedderError, match=r"defined in the script that"):
        embedder_from_config(config, where="zc.scanner")  # said: --plugin __main__


def test_a_setting_the_factory_does_not_take_is_named_at_rebuild() -> None:
    """A subclass inheriting settings() its own __init__ does not take: Scanner.load
    stopped with a bare TypeError traceback from the factory call."""

    class Renamed(ToyChunks):
        name = "TOY_CHUNKS_FIXED_HOP"

        def __init__(self, *, device: object = None) -> None:
            super().__init__(hop=0.25)

    register_embedder(
        EmbedderSpec(name="TOY_CHUNKS_FIXED_HOP", factory=Renamed, dim=4, takes_checkpoint=False),
        overwrite=True,
    )
    with pytest.raises(
        audio_embed.AudioEmbedError,
        match=r"^t\.scanner: TOY_CHUNKS_FIXED_HOP could not be rebuilt with \{'hop': 0\.25\} "
        r"\(The TOY_CHUNKS_FIXED_HOP embedder has no setting 'hop'; it takes: none\.\)\. "
        r"The keys of its settings\(\)",
    ):
        embedder_from_config(Renamed().config(), where="t.scanner")


def test_an_embedder_takes_its_registry_name_so_its_saved_config_rebuilds_it() -> None:
    """A spec whose factory builds a class named otherwise (a LogMelEmbedder variant
    registered as MY_SMALL_MEL): config() named the class's name, LOGMEL, so a saved
    scanner rebuilt the built-in LOGMEL (refused: other settings) or, for a class of the
    user's, "is not registered here" in the very process that registered it."""
    register_embedder(
        EmbedderSpec(
            name="MY_SMALL_MEL",
            factory=lambda **kw: LogMelEmbedder(**{"n_mels": 32, **kw}),
            dim=128,
            takes_checkpoint=False,
        ),
        overwrite=True,
    )
    emb = create_embedder("my_small_mel")
    assert emb.name == "MY_SMALL_MEL" and emb.config()["name"] == "MY_SMALL_MEL"
    assert embedder_from_config(emb.config()).config() == emb.config()

    class Fixed(ToyChunks):
        @property
        def name(self) -> str:  # type: ignore[override]
            return "FIXED"

    register_embedder(
        EmbedderSpec(name="NOT_FIXED", factory=Fixed, dim=4, takes_checkpoint=False),
        overwrite=True,
    )
    with pytest.raises(audio_embed.AudioEmbedError, match=r"named 'FIXED'; its name must be"):
        create_embedder("NOT_FIXED")


# ---------------------------------------------------------------- extension surface


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` imported by ``path`` anywhere (functions too), except
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_no_import_cycles_even_inside_functions() -> None:
    root = Path(audio_embed.__file__).parent
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    # a package's submodule imports its package's __init__ first: count that edge
    graph = {
        name: {m for m in _imports(path, "audio_embed") if m in modules and m != name}
        for name, path in modules.items()
    }
    graph["audio_embed.registry"].discard("audio_embed")  # the parent package is lazy
    seen: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, set())):
            if nxt.startswith(node + "."):  # a package importing its own submodules
                continue
            if seen.get(nxt) == 1:
                cycle = " -> ".join([*stack[stack.index(nxt) :], nxt]) if nxt in stack else nxt
                raise AssertionError(f"import cycle: {cycle}")
            if nxt not in seen:
                walk(nxt, [*stack, nxt])
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            walk(name, [name])
    assert not (graph["audio_embed.registry"] - {"audio_embed.errors"})  # a leaf


def test_no_module_calls_another_objects_underscore_methods() -> None:
    root = Path(audio_embed.__file__).parent / "embedders"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("_")
                and not node.func.attr.startswith("__")
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr in ("base", "embedder")
            ):
                raise AssertionError(f"{path.name}:{node.lineno} calls {ast.unparse(node.func)}")


def test_checkpoint_and_device_are_part_of_the_spec_contract(tmp_path: Path) -> None:
    assert get_spec("LOGMEL").takes_checkpoint is False
    with pytest.raises(InvalidInputError, match="takes no checkpoint"):
        create_embedder("LOGMEL", checkpoint=tmp_path / "x.pt")
    assert create_embedder("LOGMEL", device="cpu").device.type == "cpu"
    assert all(get_spec(n).takes_checkpoint for n in ("HUBERT_BASE", "AST", "EAT", "BEATS"))


def test_a_plugin_module_registers_its_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_models.py").write_text(
        "from audio_embed.embedders.logmel import LogMelEmbedder\n"
        "from audio_embed.registry import EmbedderSpec, register_embedder\n"
        "register_embedder(EmbedderSpec(name='MY_LOGMEL', dim=128, takes_checkpoint=False,\n"
        "    factory=lambda **kw: LogMelEmbedder(n_mels=32, **kw)))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin("my_models")
    assert create_embedder("my_logmel").dim == 128
    with pytest.raises(audio_embed.AudioEmbedError, match="no_such_module"):
        load_plugin("no_such_module")


def test_a_plugin_is_also_named_by_its_file_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_plugin("./my_models.py")`` (``--plugin ./my_models.py``) imports the file as
    ``my_models``; before, a path raised a bare TypeError, and a module beside the current
    folder but not on the Python path failed with no word on how to make it importable."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "path_plugin_models.py").write_text(
        "from audio_embed.embedders.logmel import LogMelEmbedder\n"
        "from audio_embed.registry import EmbedderSpec, register_embedder\n"
        "register_embedder(EmbedderSpec(name='PATH_LOGMEL', dim=128, takes_checkpoint=False,\n"
        "    factory=lambda **kw: LogMelEmbedder(n_mels=32, **kw)))\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(audio_embed.AudioEmbedError, match=r"put its folder on PYTHONPATH.*\.py"):
        load_plugin("path_plugin_models")
    loaded = load_plugin("plugins/path_plugin_models.py")
    assert loaded.__name__ == "path_plugin_models"
    assert create_embedder("PATH_LOGMEL").config()["class"].startswith("audio_embed.")
    assert load_plugin("path_plugin_models") is loaded  # now importable by its name
    with pytest.raises(audio_embed.AudioEmbedError, match=r"not a Python file"):
        load_plugin("plugins/missing.py")
    with pytest.raises(audio_embed.AudioEmbedError, match=r"Could not import"):
        load_plugin("..relative")


# ---------------------------------------------------------------- what a model's author meets


def test_window_settings_key_the_cache_alike_as_ints_or_floats() -> None:
    a = Scanner(LogMelEmbedder(), scan_windows=SlidingWindows(8, 1))
    b = Scanner(LogMelEmbedder(), scan_windows=SlidingWindows(8.0, 1.0))
    assert a._settings() == b._settings()


def test_auto_batch_size_counts_the_padded_input() -> None:
    short, padded = ToyChunks(), ToyChunks()
    padded.padded_input_seconds = 30.0  # Whisper pads every input to 30 s
    assert padded.auto_batch_size(1.0) < short.auto_batch_size(1.0)
    assert padded.auto_batch_size(1.0) == padded.auto_batch_size(30.0)


def test_to_moves_tensor_buffers_too() -> None:
    class WithFilterbank(LogMelEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.filterbank = torch.ones(4, 4)

    emb = WithFilterbank().to("meta")
    assert emb.filterbank.device.type == "meta" and emb.device.type == "meta"


def test_targeted_windows_take_their_hop_from_the_scan_windows() -> None:
    scanner = Scanner(LogMelEmbedder(), scan_windows=SlidingWindows(8.0, 0.5))
    assert scanner.train_windows.hop == 0.5
    explicit = Scanner(
        LogMelEmbedder(),
        scan_windows=SlidingWindows(8.0, 0.5),
        train_windows=TargetedWindows(8.0, hop=2.0),
    )
    assert explicit.train_windows.hop == 2.0
    assert TargetedWindows().hop is None  # alone: a 1 s grid


def test_evaluate_names_results_and_labels_that_do_not_match(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from audio_embed.errors import MarkerError
    from audio_embed.evaluate import evaluate
    from audio_embed.scanner import ScanResult

    result = ScanResult(
        source="rec.wav",
        starts=np.arange(5.0),
        probabilities=np.array([0.1, 0.9, 0.9, 0.1, 0.1]),
        window=1.0,
        duration=5.0,
        threshold=0.5,
    )
    events = {"other/rec.wav": [(1.0, 3.0)]}
    evaluate({"rec.wav": result}, events)
    assert "other/rec.wav" in caplog.text and "have no labels (rec.wav)" in caplog.text
    with pytest.raises(MarkerError, match="1 labelled file"):
        evaluate({"rec.wav": result}, events, unmatched="error")
    caplog.clear()
    assert evaluate({"rec.wav": result}, {"rec.wav": [(1.0, 3.0)]}).recall == 1.0
    assert "evaluate:" not in caplog.text


def test_spec_and_class_must_agree_on_layers() -> None:
    register_embedder(
        EmbedderSpec(name="TOY_CHUNKS_BAD", factory=ToyChunks, dim=4, num_layers=1),
        overwrite=True,
    )
    with pytest.raises(audio_embed.AudioEmbedError, match="num_layers=1"):
        create_embedder("TOY_CHUNKS_BAD")
    register_embedder(
        EmbedderSpec(name="TOY_CHUNKS", factory=ToyChunks, dim=4, takes_checkpoint=False),
        overwrite=True,
    )
    assert create_embedder("TOY_CHUNKS", hop=0.5).settings() == {"hop": 0.5}


def test_check_embedder_says_what_is_wrong_with_a_frame_geometry() -> None:
    """A geometry that cannot be (hop 0: a ZeroDivisionError before; offset > 0: a frame
    count message) is named as such; a frame count that another offset or hop would give
    says which (a centred STFT declared uncentred)."""

    class Geometry(ToyChunks):
        def __init__(self, geometry: FrameGeometry) -> None:
            super().__init__()
            self.geometry = geometry

        def frame_geometry(self) -> FrameGeometry:
            return self.geometry

    for bad in (FrameGeometry(hop=0, field=8000), FrameGeometry(hop=4000, field=8000, offset=5)):
        with pytest.raises(AssertionError, match=r"must have hop > 0, field > 0 and offset <= 0"):
            check_embedder(Geometry(bad))
    with pytest.raises(InvalidInputError, match=r"must have hop > 0"):
        Geometry(FrameGeometry(hop=0, field=8000)).config()
    with pytest.raises(AssertionError, match=r"got \[11\] \(a hop of 3637 to 4000 would give 11"):
        check_embedder(Geometry(FrameGeometry(hop=8000, field=8000)))
    with pytest.raises(AssertionError, match=r"got \[11\] \(offset=0 would give 11: the frames"):
        check_embedder(Geometry(FrameGeometry(hop=4000, field=8000, offset=-4000)))

    class Centred(ToyChunks):  # pads half a chunk on both sides, declares no offset
        def encode_frames(
            self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
        ) -> list[torch.Tensor]:
            return super().encode_frames(torch.nn.functional.pad(waveforms, (4000, 4000)), layers)

    with pytest.raises(AssertionError, match=r"got \[13\] \(offset=-4000 would give 13: a cent"):
        check_embedder(Centred())

    class Transposed(ToyChunks):  # frames [B, D, T]: pooled over D, a vector of T values
        def encode_frames(
            self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
        ) -> list[torch.Tensor]:
            return [f.transpose(1, 2) for f in super().encode_frames(waveforms, layers)]

    with pytest.raises(AssertionError, match=r"\(3, 11\) \(the frame count: .*\[B, D, T\]"):
        check_embedder(Transposed())
