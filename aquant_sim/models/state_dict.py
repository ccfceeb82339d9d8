"""State dicts in the formats users have: ``.npz``, ``.safetensors`` and torch's ``.pt``/``.pth``,
all read without executing code.

- ``.npz`` (numpy's zip of ``.npy`` arrays): ``np.load(allow_pickle=False)``; an aquant weight
  file (aquant_sim/models/weights.py) or any archive of plain arrays named by state-dict keys.
- ``.safetensors``: the ``safetensors`` package's reader (a JSON header and raw little-endian
  buffers: nothing to execute).
- ``.pt``/``.pth``: ``torch.load(weights_only=True, map_location="cpu")``. This is a decision:
  the file is a pickle, but torch's weights-only unpickler is restricted to tensors, storages and
  plain containers (dict, list, tuple, numbers, strings) and refuses any other global, so it
  never imports or calls user code. A file that holds anything else (a whole model saved with
  ``torch.save(model)``, an optimizer, custom classes) is refused with a message saying to save
  ``model.state_dict()`` instead. A checkpoint dict whose only tensor mapping sits under
  ``"state_dict"`` or ``"model"`` is unwrapped.

Any other suffix, and any malformed file, is an :class:`ArtifactError` naming the file.
:func:`read_state_dict` returns float32/int64 numpy arrays by key; :func:`load_state_dict`
copies them into a model, strictly (same keys, same shapes, finite values).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aquant_sim.errors import ArtifactError

CHECKPOINT_KEYS = ("state_dict", "model")
"""Keys under which training checkpoints commonly nest the state dict."""

HEADER_KEY = "__aquant_meta__"
"""The entry of an aquant .npz that holds its JSON header (aquant_sim/models/weights.py), not a parameter."""


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files if key != HEADER_KEY}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, AttributeError) as error:
        # AttributeError: a single .npy has no context manager; allow_pickle=False turns an
        # object array into a ValueError: refused, never unpickled.
        raise ArtifactError(f"{path}: not a readable .npz archive of arrays ({_first_line(error)})") from None


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise ArtifactError(f"{path}: reading .safetensors needs the safetensors package: pip install 'aquant-sim[calibrate]'") from None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ArtifactError(f"{path}: not a readable .safetensors file ({_first_line(error)})") from None


def _read_torch(path: Path) -> dict:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types on malformed input; each becomes one message
        if "Weights only load failed" in str(error):
            raise ArtifactError(f"{path}: holds objects other than tensors (e.g. a whole model saved with torch.save(model)), "
                                f"which are not unpickled; save model.state_dict() instead") from None
        raise ArtifactError(f"{path}: not a torch state dict readable with weights_only=True ({_first_line(error)})") from None
    if isinstance(loaded, dict) and not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        nested = [k for k in CHECKPOINT_KEYS if isinstance(loaded.get(k), dict)]
        if nested:
            loaded = loaded[nested[0]]
    if not isinstance(loaded, dict) or not loaded:
        raise ArtifactError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(loaded).__name__}")
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ArtifactError(f"{path}: entries that are not named tensors: {bad[:5]}")
    return {k: v.detach().cpu().numpy() for k, v in loaded.items()}


_READERS = {".npz": _read_npz, ".safetensors": _read_safetensors, ".pt": _read_torch, ".pth": _read_torch}
"""Reader by suffix; the command line's --weights check (aquant_sim/cli/arguments.py) knows the
same suffixes without importing torch."""


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a weight file by state-dict key (floats as float32, integers as int64),
    checked for form: numbers only, no NaN or Inf. Errors are :class:`ArtifactError`."""
    path = Path(path)
    if path.suffix not in _READERS:
        known = ", ".join(_READERS)
        raise ArtifactError(f"{path}: unknown weight format {path.suffix or '(no suffix)'}; expected {known}")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such weight file")
    arrays = _READERS[path.suffix](path)
    out = {}
    for key, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "fiub":
            raise ArtifactError(f"{path}: parameter {key!r} has dtype {array.dtype}, expected numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ArtifactError(f"{path}: parameter {key!r} holds NaN or Inf")
        out[key] = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
    return out


def load_state_dict(model: nn.Module, arrays: dict[str, np.ndarray], where: str | Path) -> None:
    """Copy ``arrays`` into ``model`` strictly: the same keys and shapes as its state dict, else
    an :class:`ArtifactError` naming ``where`` and the first parameters that differ."""
    state = model.state_dict()
    missing = sorted(set(state) - set(arrays))
    if missing:
        raise ArtifactError(f"{where}: missing parameters {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    unexpected = sorted(set(arrays) - set(state))
    if unexpected:
        raise ArtifactError(f"{where}: parameters the model does not have {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for key, target in state.items():
        if tuple(arrays[key].shape) != tuple(target.shape):
            raise ArtifactError(f"{where}: parameter {key!r} has shape {tuple(arrays[key].shape)}, the model expects {tuple(target.shape)}")
    model.load_state_dict({key: torch.from_numpy(np.ascontiguousarray(array)).to(state[key].dtype) for key, array in arrays.items()})
