"""Finding and reading EAT checkpoints: a Hub id or a local directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from audio_embed.errors import CheckpointError


def load_eat_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``model.safetensors`` file (on CPU)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises several unrelated types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}).") from exc


def resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Paths of ``config.json`` and ``model.safetensors`` for a local directory or Hub id.

    A Hub id is fetched with :func:`huggingface_hub.hf_hub_download` on a
    connected machine, or read from the Hugging Face cache offline (set
    ``HF_HUB_OFFLINE=1`` to skip the network entirely).
    """
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        files = (path / "config.json", path / "model.safetensors")
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(
                f"{path} is not an EAT checkpoint directory: it lacks {', '.join(absent)}. "
                "It must hold the Hub repository's config.json and model.safetensors."
            )
        return files
    text = os.fspath(checkpoint)
    looks_local = text.startswith((".", "/", "~", "\\")) or text.count("/") > 1 or "\\" in text
    if isinstance(checkpoint, os.PathLike) or looks_local:
        raise CheckpointError(
            f"EAT checkpoint directory not found: {path}. Pass a directory holding "
            "config.json and model.safetensors, or a Hugging Face Hub id."
        )
    from huggingface_hub import hf_hub_download

    try:
        config = hf_hub_download(text, "config.json")
        weights = hf_hub_download(text, "model.safetensors")
    except Exception as exc:
        raise CheckpointError(
            f"Could not fetch the EAT checkpoint {text!r} from the Hugging Face Hub ({exc}). "
            "Without network access, download it once on a connected machine (it is then "
            "read from the Hugging Face cache; set HF_HUB_OFFLINE=1), or pass a local "
            "directory holding its config.json and model.safetensors."
        ) from exc
    return Path(config), Path(weights)
