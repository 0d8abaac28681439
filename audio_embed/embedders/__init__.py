"""Embedders: the :class:`Embedder` contract and the built-in models.

Importing this package imports every model module in it (any
``audio_embed/embedders/<name>.py``, or package ``<name>/`` such as ``beats``
and ``eat``, not starting with ``_``; a package's own submodules are not
imported by this scan, so its specs register once), and each model module
registers its own :class:`~audio_embed.registry.EmbedderSpec` beside
its class. Adding a built-in model is adding one module here; nothing else
lists it. Model modules import only torch and numpy at import time: heavy
backends (transformers, ctranslate2, a tflite runtime) load when a model that
needs them is created.
"""

from __future__ import annotations

import importlib
import pkgutil

from audio_embed.embedders.base import Embedder, LayeredEmbedder
from audio_embed.embedders.logmel import LogMelEmbedder
from audio_embed.embedders.multilayer import MultiLayerEmbedder
from audio_embed.embedders.shared import FrameGeometry
from audio_embed.embedders.torchaudio import TorchaudioEmbedder

__all__ = [
    "Embedder",
    "FrameGeometry",
    "LayeredEmbedder",
    "LogMelEmbedder",
    "MultiLayerEmbedder",
    "TorchaudioEmbedder",
    "model_modules",
]


def model_modules() -> list[str]:
    """Names of the modules of this package (each may register specs), sorted."""
    return sorted(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    )


for _module in model_modules():
    importlib.import_module(_module)
