"""The public namespace: every name resolves, and importing it (or starting the
CLI) does not load torch or scikit-learn until a name that needs them is used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import audio_embed


def test_every_public_name_resolves() -> None:
    for name in audio_embed.__all__:
        assert getattr(audio_embed, name) is not None, name
    assert set(audio_embed.__all__) <= set(dir(audio_embed))
    from audio_embed.scanner import Scanner

    assert audio_embed.Scanner is Scanner
    assert audio_embed.Scanner.__module__ == "audio_embed.scanner.core"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_and_cli_start_without_torch() -> None:
    heavy = {"torch", "sklearn", "torchaudio", "transformers"}
    assert not heavy & _loaded_after("import audio_embed")
    assert not heavy & _loaded_after("import audio_embed.cli")
    assert "torch" in _loaded_after("import audio_embed; audio_embed.Scanner")


def test_formats_batch_and_evaluation_io_import_without_torch() -> None:
    """Reading markers, writing and reading results, naming outputs: no torch, no sklearn."""
    heavy = {"torch", "sklearn", "torchaudio", "transformers", "matplotlib"}
    light = "audio_embed.formats, audio_embed.batch, audio_embed.evaluation, audio_embed.plot"
    assert not heavy & _loaded_after(f"import {light}")


def test_help_of_the_package_shows_a_quickstart_that_runs(tmp_path: Path) -> None:
    """``help(audio_embed)`` in a notebook said one line, then 200 000 characters of
    class listings. Its docstring now starts with the quickstart; it runs (on the
    demo's recordings) as written."""
    import re
    import textwrap

    import audio_embed
    from audio_embed.demo import make_demo_set

    doc = audio_embed.__doc__ or ""
    block = re.search(r"::\n\n((?:    .*\n|\n)+)", doc)  # the indented literal block
    assert block is not None, doc
    code = textwrap.dedent(block.group(1))
    assert "Scanner.from_name" in code and "scanner.scan(" in code
    demo = make_demo_set(tmp_path, n_train=2, n_test=1, seconds=40, targets_per_file=3,
                         distractors_per_file=3)  # fmt: skip
    (tmp_path / "long_video.mp4").write_bytes(demo.test_files[0].read_bytes())
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        exec(compile(code, "audio_embed.__doc__", "exec"), {"print": lambda *a: None})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "horn.scanner").is_file()


def test_the_parts_an_extension_passes_are_public_names() -> None:
    """A model with time frames returns a FrameGeometry, a Scanner takes a Postprocessing:
    both were reachable only from the modules that define them (README: "Adding a model")."""
    for name in ("FrameGeometry", "Postprocessing", "CalibratedClassifier", "SlidingWindows"):
        assert name in audio_embed.__all__, name
    from audio_embed.detect import Postprocessing
    from audio_embed.embedders import FrameGeometry

    assert audio_embed.FrameGeometry is FrameGeometry
    assert audio_embed.Postprocessing is Postprocessing


def test_a_scanner_subclass_keeps_its_type_through_load_fit_and_adapt(tmp_path: Path) -> None:
    """``MyScanner.load(path)`` was typed ``Scanner`` (as were from_name, fit and adapt), so
    mypy --strict refused ``mine: MyScanner = MyScanner.load(path)`` in a user's code."""
    snippet = tmp_path / "subclass_types.py"
    snippet.write_text(
        "from attrs import define\n"
        "from typing_extensions import assert_type\n\n"
        "from audio_embed import Scanner\n\n\n"
        "@define\n"
        "class Mine(Scanner):\n"
        "    pass\n\n\n"
        "def check(path: str) -> None:\n"
        "    assert_type(Mine.load(path), Mine)\n"
        "    assert_type(Mine.from_name('LOGMEL'), Mine)\n"
        "    assert_type(Mine.load(path).fit([]), Mine)\n"
        "    assert_type(Mine.load(path).adapt([]), Mine)\n"
    )
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(snippet)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
