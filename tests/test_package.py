"""The public namespace: every name resolves, and importing it (or starting the
CLI) does not load torch or scikit-learn until a name that needs them is used."""

from __future__ import annotations

import subprocess
import sys

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
