"""Weight files without pickle: a ``.npz`` archive of the state dict and a JSON header.

Format (version 1): an uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays) holding

- one array per state-dict entry, under the entry's name (``stages.0.0.conv1.weight``, ...),
  float tensors as float32, integer buffers (BatchNorm's ``num_batches_tracked``) as int64;
- ``__aquant_meta__``: a uint8 array of UTF-8 JSON ``{"format": "aquant-weights", "version": 1,
  "model": build arguments or null, "meta": the caller's dict}``.

Reading uses ``np.load(allow_pickle=False)``, so a file can hold only plain arrays and never runs
code. Loading checks that the file's entries are exactly the model's, with the same shapes,
and that no value is NaN or Inf; each failure is an :class:`ArtifactError` naming the file and
the parameter.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from torch import nn

from aquant_sim.errors import ArtifactError, ConfigError
from aquant_sim.models.registry import BUILD_ATTRIBUTE, build_model
from aquant_sim.models.state_dict import HEADER_KEY, load_state_dict, read_state_dict

META_KEY = HEADER_KEY
FORMAT = "aquant-weights"
VERSION = 1


def save_weights(model: nn.Module, path: str | Path, meta: dict | None = None) -> None:
    """Write the model's state dict and ``meta`` (any JSON-serialisable dict) to ``path``.

    Models from :func:`build_model` also record their build arguments, which
    :func:`load_model` uses to rebuild them.
    """
    arrays = {}
    for key, tensor in model.state_dict().items():
        if key == META_KEY:
            raise ArtifactError(f"{path}: state-dict entry {key!r} clashes with the header's name")
        array = tensor.detach().cpu().numpy()
        arrays[key] = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
    header = {"format": FORMAT, "version": VERSION, "model": getattr(model, BUILD_ATTRIBUTE, None), "meta": meta or {}}
    try:
        encoded = json.dumps(header, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{path}: meta is not plain JSON ({error})") from None
    arrays[META_KEY] = np.frombuffer(encoded, dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _read(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays of a weight file, all checked for form (not against a model)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such weight file")
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.lib.npyio.NpzFile):
            with archive:
                arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        # allow_pickle=False turns an object array into a ValueError: refused, never unpickled.
        raise ArtifactError(f"{path}: not a readable .npz weight file ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ArtifactError(f"{path}: not a readable .npz weight file (it holds a single .npy array)")
    if META_KEY not in arrays:
        raise ArtifactError(f"{path}: no {META_KEY} header; not an aquant weight file")
    try:
        header = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path}: header is not valid JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArtifactError(f"{path}: header format is not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise ArtifactError(f"{path}: weight-file version {header.get('version')!r} is not supported (expected {VERSION})")
    for key, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise ArtifactError(f"{path}: parameter {key!r} has dtype {array.dtype}, expected numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ArtifactError(f"{path}: parameter {key!r} holds NaN or Inf")
    return header, arrays


def read_header(path: str | Path) -> dict:
    """The JSON header of a weight file: ``{"format", "version", "model", "meta"}``."""
    return _read(path)[0]


def load_weights(model: nn.Module, path: str | Path) -> dict:
    """Copy the weights in ``path`` into ``model`` (strictly: same names, same shapes); return meta."""
    header, arrays = _read(path)
    load_state_dict(model, arrays, path)
    return header["meta"]


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the zoo model recorded in a weight file, load its weights; return it and meta."""
    build = read_header(path)["model"]
    if not isinstance(build, dict) or not {"name", "in_channels", "num_classes", "options"} <= set(build):
        raise ArtifactError(f"{path}: the header records no zoo model to rebuild")
    try:
        model = build_model(build["name"], build["in_channels"], build["num_classes"], **build["options"])
    except (ConfigError, TypeError) as error:
        raise ArtifactError(f"{path}: the recorded model cannot be built ({error})") from None
    return model, load_weights(model, path)


def load_zoo_model(name: str, path: str | Path) -> tuple[nn.Module, dict]:
    """The zoo model ``name`` with the weights in ``path``; return it and the file's meta.

    An aquant ``.npz`` (with its header) rebuilds the model it records (options included); any
    other state dict (``.npz``, ``.safetensors``, ``.pt``/``.pth``, aquant_sim/models/state_dict.py)
    builds ``name`` at its default options, with the input channels of its first conv weight and the
    classes of its last linear weight as the file holds them, and loads strictly (a differing shape names the parameter).
    """
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                has_header = META_KEY in archive.files
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, AttributeError) as error:
            raise ArtifactError(f"{path}: not a readable .npz weight file ({error})") from None
        if has_header:
            return load_model(path)
    arrays = read_state_dict(path)
    # The input channels and classes from the file's first conv and last linear, found by the
    # keys of a probe of the same model (files may store keys in any order).
    probe = [(key, value.dim()) for key, value in build_model(name, 1, 1).state_dict().items()]
    first = next(key for key, dim in probe if dim == 4)
    last = [key for key, dim in probe if dim == 2][-1]
    if first not in arrays or last not in arrays:
        raise ArtifactError(f"{path}: no {first!r} or no {last!r}; not a state dict of the zoo model {name}")
    model = build_model(name, int(arrays[first].shape[1]), int(arrays[last].shape[0]))
    load_state_dict(model, arrays, path)
    return model, {}
