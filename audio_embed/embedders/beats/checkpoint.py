"""Loading official BEATs checkpoints (local path or URL) strictly into :class:`BEATsModel`."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from audio_embed.embedders.beats.config import OFFICIAL_PAGE, BEATsConfig
from audio_embed.embedders.beats.network import BEATsModel
from audio_embed.errors import CheckpointError, InvalidInputError


def _is_url(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


def _resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """A local path, or an URL downloaded (once) into torch hub's checkpoints folder."""
    if not _is_url(checkpoint):
        return Path(checkpoint).expanduser()
    url = str(checkpoint)
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise CheckpointError(f"Cannot tell a file name from the checkpoint URL {url!r}.")
    target = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Writes to a temporary file and moves it into place when complete.
            torch.hub.download_url_to_file(url, str(target), progress=True)
        except Exception as exc:
            raise CheckpointError(
                f"Could not download the BEATs checkpoint from {url} ({exc}). On a "
                "machine without network access, download it elsewhere and pass "
                "checkpoint=<path to the .pt file>."
            ) from exc
    return target


def _infer_cfg(state: Mapping[str, Any]) -> dict[str, Any]:
    """A cfg for a bare state dict: the iter3+ defaults, predictor read from the weights."""
    cfg: dict[str, Any] = {}
    predictor = state.get("predictor.weight")
    if isinstance(predictor, Tensor) and predictor.ndim == 2:
        cfg["finetuned_model"] = True
        cfg["predictor_class"] = int(predictor.shape[0])
    return cfg


def load_beats_checkpoint(checkpoint: str | os.PathLike[str]) -> BEATsModel:
    """Build a :class:`BEATsModel` from an official checkpoint file (or URL), strictly.

    The file is what the official repository releases: ``{'cfg': dict, 'model':
    state_dict, …}``; a bare state dict is read with the default (iter3+) cfg.
    It is opened with ``torch.load(..., weights_only=True)``: nothing in it is
    executed. Raises :class:`CheckpointError` when the file is missing, not a
    checkpoint, or does not fit the architecture its cfg describes.
    """
    path = _resolve_checkpoint(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"BEATs checkpoint file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a loadable torch checkpoint, or it holds objects other than "
            f"tensors and plain containers, which weights_only=True refuses ({exc})."
        ) from exc
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict with 'cfg' and 'model' (or a state dict). "
            f"Found {type(loaded).__name__}."
        )
    if "model" in loaded and isinstance(loaded["model"], Mapping):
        state: Mapping[str, Any] = loaded["model"]
        cfg_dict = loaded.get("cfg")
        if cfg_dict is None:
            cfg_dict = _infer_cfg(state)
    else:
        state = loaded
        cfg_dict = _infer_cfg(state)
    if not isinstance(cfg_dict, Mapping):
        raise CheckpointError(
            f"{path}: the checkpoint's 'cfg' is a {type(cfg_dict).__name__}, not a dict."
        )
    try:
        cfg = BEATsConfig.from_dict(cfg_dict)
    except InvalidInputError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    with torch.device("meta"):
        model = BEATsModel(cfg)
    _check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().eval()


def _describe(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _check_state_dict(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {_describe(state[k])} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and (not isinstance(state[k], Tensor) or state[k].shape != v.shape)
    ]
    if missing or unexpected or wrong:
        cfg = model.cfg if isinstance(model, BEATsModel) else None
        arch = (
            f"{cfg.encoder_layers} blocks, width {cfg.encoder_embed_dim}, "
            f"{cfg.encoder_attention_heads} heads, patch channels {cfg.embed_dim}"
            if cfg is not None
            else "the BEATs architecture"
        )
        raise CheckpointError(
            f"{path} does not fit the BEATs architecture its cfg describes ({arch}): "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[:3]}). Is it a "
            f"BEATs checkpoint from {OFFICIAL_PAGE}?"
        )
