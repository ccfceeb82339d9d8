"""Argument types of the ``aquant`` subcommands, checked when the command line is parsed.

Each function here is an argparse ``type=``: it turns the text of one option into its value or
raises :class:`argparse.ArgumentTypeError`, which argparse reports as one line naming the option
(``aquant calibrate: error: argument --w-bits: ...``) and exit status 2, before the command reads
any data or trains anything. Nothing here imports torch: every ``aquant`` command builds the
parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aquant_sim.program import MAX_BITS, MIN_BITS
from aquant_sim.rounding import MAX_FRAC_BITS


def int_in(low: int, high: int | None = None):
    """An argparse type: an integer in ``low..high`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in {low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


bits = int_in(MIN_BITS, MAX_BITS)
"""Operand width of weights or activations, the datapath's MIN_BITS..MAX_BITS."""
frac_bits = int_in(1, MAX_FRAC_BITS)
"""F, the fraction bits that reach the border unit (docs/contract.md (6)-(8))."""
positive = int_in(1)
non_negative = int_in(0)


WEIGHT_FORMATS = {
    ".npz": ("a .npz archive of arrays (aquant train writes these)", lambda head: head.startswith(b"PK")),
    ".safetensors": ("a .safetensors file", lambda head: len(head) > 8 and head[8:9] == b"{"),
    ".pt": ("a torch state dict (torch.save(model.state_dict()))", lambda head: head.startswith((b"PK", b"\x80"))),
    ".pth": ("a torch state dict (torch.save(model.state_dict()))", lambda head: head.startswith((b"PK", b"\x80"))),
}
"""Weight-file suffixes that ``--weights`` accepts: what each must hold, and a test of its first
bytes (a zip's ``PK``, safetensors' JSON header after its 8-byte length, a pickle's protocol
byte); aquant_sim/models/state_dict.py reads them, and checks the contents."""

HEAD_BYTES = 16


def _head(text: str) -> tuple[Path, bytes]:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    try:
        with open(path, "rb") as handle:
            return path, handle.read(HEAD_BYTES)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {error.strerror}") from None


def weights_file(text: str) -> Path:
    """An argparse type: an existing, readable weight file of a known format (by suffix and by its
    first bytes). Its contents are checked when it is loaded."""
    path, head = _head(text)
    if path.suffix not in WEIGHT_FORMATS:
        known = "; ".join(f"{suffix} ({what})" for suffix, (what, _) in WEIGHT_FORMATS.items())
        raise argparse.ArgumentTypeError(f"{text}: unknown weight format {path.suffix or '(no suffix)'}; expected {known}")
    what, looks_right = WEIGHT_FORMATS[path.suffix]
    if not looks_right(head):
        raise argparse.ArgumentTypeError(f"{text}: does not start like {what}")
    return path


def dataset(text: str) -> str:
    """An argparse type: a built-in dataset name or an existing image folder (read later)."""
    from aquant_sim.data import DATASET_NAMES  # here, not above: only commands that take --data pay for it

    if text not in DATASET_NAMES and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}: choose one of {', '.join(DATASET_NAMES)} or an existing image folder")
    return text
