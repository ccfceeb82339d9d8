"""Save and load integer programs: one zip file per program, documented in ``docs/artifact.md``.

The zip holds ``manifest.json`` (format name, integer version, program settings, tensors, ops,
requantizers and border tables; every array is named by the zip member that holds it) and one
``.npy`` file per array. Nothing in the file is ever executed: the manifest is plain JSON, arrays
are read with ``allow_pickle=False`` after their header has been checked against the dtype and
size that the format prescribes.

Loading checks every field and raises one :class:`ArtifactError` naming the file and the field
(``op 'layer1.0.conv1' (conv2d): requant.multiplier: ...``); the semantic checks of
``aquant_sim.program`` (ranges, shapes, graph) run on the result and their :class:`ProgramError`
is re-raised as :class:`ArtifactError` with the same message. Writing is atomic (a temporary file
in the same folder, then a rename) and deterministic: the same program gives the same bytes.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from aquant_sim.atomic import atomic_write
from aquant_sim.errors import ArtifactError, ProgramError
from aquant_sim.program import (
    MAX_TENSOR_ELEMENTS, OP_TYPES, AccumulatorParams, BorderTable, FieldKind, Program, QuantParams, Requantizer, Tensor,
    op_fields,
)
from aquant_sim.rounding import OverflowPolicy, RequantVariant

FORMAT_NAME = "aquant-sim-program"
FORMAT_VERSION = 8
"""Readers accept exactly the versions they know; any change to the manifest bumps it. Version
2 added ``weight_zero_point`` to conv2d and linear (``since=2`` in ``program.py``); version 3
added each requantizer's ``variant`` (:data:`VARIANT_SINCE`); version 4 added the variant
``fp32_add`` and the add's ``zero_offset`` (``since=4``); version 5 added the op types ``lut``
and ``mul`` (their classes' ``since``); version 6 added the conv2d's ``padding_end`` (``since=6``)
and the op type ``concat`` (its class's ``since``). Lookup tables and products (format 5) and
concat with per-side padding were developed side by side; they are two versions because files of
version 5 were written (without ``padding_end``) before the concat joined. Version 7 stores every
requantizer's multipliers as int64 (:data:`WIDE_MULTIPLIER_SINCE`), which the variant ``float64``
(a double's 53-bit significand) needs, and added that variant (:data:`VARIANT_VERSIONS`).
Version 8 added the max pooling's ``padding_end`` (``since=8``)."""
KNOWN_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8)
"""Older files load with the fields they lack at their defaults (weight zero-points 0, the
BORDER requantizer, an add's offset 0, symmetric conv and max-pooling padding); an op type or a requantizer
variant newer than the file's version is refused."""
VARIANT_SINCE = 3
"""The format version whose requantizer objects hold ``variant``."""
VARIANT_VERSIONS = {
    RequantVariant.BORDER: 1, RequantVariant.GEMMLOWP: 3, RequantVariant.FP32: 3, RequantVariant.FP32_ADD: 4,
    RequantVariant.TFLITE_ADD: 6, RequantVariant.TFLITE_AVGPOOL: 6, RequantVariant.TFLITE_MEAN: 6, RequantVariant.FLOAT64: 7,
}
"""The format version from which a file may hold each variant; a variant in an older file is
refused. TFLite's three variants came with its importer while the format was 6 (without a
version bump: a reader of version 6 that predates them refuses them as unknown, it never
misreads them), so version-6 files hold them (``tests/data/artifact_v6``)."""
WIDE_MULTIPLIER_SINCE = 7
"""The format version from which requantizer multipliers are stored int64 (int32 before)."""

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20
"""A manifest larger than this is not a program (the manifest holds no arrays; a thousand-op
network's is well under 1 MiB)."""
MAX_ARRAY_BYTES = 1 << 31
"""Largest array member (2 GiB): far above any real layer."""
MAX_EXPANSION = 32
"""The members of a file may declare, in all, at most this many times the file's size of
uncompressed bytes (or :data:`EXPANSION_FLOOR`, whichever is larger). Integer weights deflate
by a factor of 1 to 4; a zip bomb by up to 1,032. Checked from the zip directory, before any
member is decompressed, so that loading needs memory in proportion to the file."""
EXPANSION_FLOOR = 8 << 20
"""Small files may expand to this many bytes whatever their compression ratio (border tables of
one repeated value deflate a thousandfold)."""
_MEMBER_NAME = re.compile(r"^arrays/[A-Za-z0-9_.\-]+\.npy$")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip timestamps fixed so that saving is deterministic

# Stored dtypes of array fields; weights use the narrowest of int8/int16 that holds weight_bits.
_F64 = np.dtype("<f8")
_I32 = np.dtype("<i4")
_I64 = np.dtype("<i8")
_VECTOR_DTYPES = {FieldKind.INT_VECTOR: _I32, FieldKind.REAL_VECTOR: _F64}
"""Each op field's manifest form follows from its :class:`FieldKind` (``program.op_fields``):
TENSOR a string, INT an integer, PAIR a list of two, WEIGHTS and the vectors an array member,
REQUANT an object, OPTIONAL_REQUANT an object or null."""


def multiplier_dtype(version: int) -> np.dtype:
    """The stored dtype of a requantizer's multipliers in a file of format ``version``: int64 from
    :data:`WIDE_MULTIPLIER_SINCE`, int32 before."""
    return _I64 if version >= WIDE_MULTIPLIER_SINCE else _I32


def weight_dtype(weight_bits: int) -> np.dtype:
    """The stored dtype of a weight array: int8 up to 8 bits, int16 above."""
    return np.dtype("i1") if weight_bits <= 8 else np.dtype("<i2")


# ---------------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Collects arrays under member names while the manifest is built."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, values: np.ndarray, dtype: np.dtype) -> str:
        member = f"arrays/{name}.npy"
        converted = np.ascontiguousarray(values).astype(dtype)
        if not np.array_equal(converted, values):
            raise ArtifactError(f"{name}: values do not fit dtype {dtype}")
        self.arrays[member] = converted
        return member

    def borders(self, prefix: str, table: BorderTable) -> dict:
        return {"frac_bits": table.frac_bits, "values": self.array(f"{prefix}.values", table.values, _I32)}

    def requant(self, prefix: str, requant: Requantizer | None) -> dict | None:
        if requant is None:
            return None
        return {
            "multiplier": self.array(f"{prefix}.multiplier", requant.multiplier, multiplier_dtype(FORMAT_VERSION)),
            "shift": self.array(f"{prefix}.shift", requant.shift, _I32),
            "borders": self.borders(f"{prefix}.borders", requant.borders),
            "variant": requant.variant.value,
        }


def _tensor_manifest(index: int, tensor: Tensor, writer: _Writer) -> dict:
    quant = tensor.quant
    if isinstance(quant, QuantParams):
        quant_json = {"kind": "quantized", "bits": quant.bits, "signed": quant.signed,
                      "scale": float(quant.scale), "zero_point": quant.zero_point}
    else:
        quant_json = {"kind": "accumulator", "scale": writer.array(f"tensor{index}.scale", quant.scale, _F64)}
    return {"name": tensor.name, "shape": list(tensor.shape), "quant": quant_json}


def _op_manifest(index: int, op, writer: _Writer) -> dict:
    """An op's manifest entry: ``type``, ``name``, then its declared fields in order."""
    entry = {"type": op.kind.value, "name": op.name}
    for spec in op_fields(type(op)):
        value, member = getattr(op, spec.name), f"op{index}.{spec.name}"
        if spec.kind in (FieldKind.TENSOR, FieldKind.INT):
            entry[spec.name] = value
        elif spec.kind is FieldKind.PAIR:
            entry[spec.name] = list(value)
        elif spec.kind in (FieldKind.REQUANT, FieldKind.OPTIONAL_REQUANT):
            entry[spec.name] = writer.requant(member, value)
        elif spec.kind is FieldKind.WEIGHTS:
            entry[spec.name] = writer.array(member, value, weight_dtype(op.weight_bits))
        else:
            entry[spec.name] = writer.array(member, value, _VECTOR_DTYPES[spec.kind])
    return entry


def program_manifest(program: Program) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest of a program and its arrays by member name (what :func:`save_program` writes)."""
    writer = _Writer()
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "program": {
            "input": program.input,
            "output": program.output,
            "accumulator_bits": program.accumulator_bits,
            "overflow": program.overflow.value,
            "input_borders": writer.borders("input_borders", program.input_borders),
        },
        "tensors": [_tensor_manifest(i, t, writer) for i, t in enumerate(program.tensors)],
        "ops": [_op_manifest(i, op, writer) for i, op in enumerate(program.ops)],
    }
    return manifest, writer.arrays


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def save_program(program: Program, path) -> Path:
    """Write ``program`` to ``path`` atomically (temporary file, then rename); return the path.

    The bytes depend only on the program: fixed timestamps, members in manifest order.
    """
    path = Path(path)
    manifest, arrays = program_manifest(program)
    text = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
    with atomic_write(path) as handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in [(MANIFEST, text)] + [(m, _npy_bytes(a)) for m, a in arrays.items()]:
            info = zipfile.ZipInfo(member, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


# ---------------------------------------------------------------------------------------------
# Reading


def _fail(where: str, message: str):
    raise ArtifactError(f"{where}: {message}" if where else message)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key '{key}' appears twice in one object")
        result[key] = value
    return result


def _object(value, where: str, keys: tuple[str, ...]) -> dict:
    """Check that ``value`` is a JSON object with exactly ``keys``."""
    if not isinstance(value, dict):
        _fail(where, f"expected an object, got {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        _fail(where, f"missing field '{missing[0]}'")
    extra = sorted(set(value) - set(keys))
    if extra:
        _fail(where, f"unknown field '{extra[0]}'")
    return value


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"expected an integer, got {value!r:.60}")
    return value


def _str(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(where, f"expected a non-empty string, got {value!r:.60}")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"expected a number, got {value!r:.60}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        _fail(where, f"must be finite and positive, got {value!r:.60}")
    return number


def _int_list(value, where: str, length: int | None = None) -> list[int]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        count = "a list" if length is None else f"a list of {length} integers"
        _fail(where, f"expected {count}, got {value!r:.60}")
    return [_int(v, f"{where}[{i}]") for i, v in enumerate(value)]


class _Reader:
    """Reads arrays from the open zip by member name, checking each header before the data."""

    def __init__(self, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]):
        self.archive = archive
        self.members = members
        self.used: set[str] = set()
        self.version = FORMAT_VERSION

    def array(self, member, where: str, dtype: np.dtype, ndim: int) -> np.ndarray:
        if not isinstance(member, str) or not _MEMBER_NAME.match(member):
            _fail(where, f"expected an array member name 'arrays/<name>.npy', got {member!r:.60}")
        info = self.members.get(member)
        if info is None:
            _fail(where, f"array '{member}' is missing from the file")
        self.used.add(member)
        if info.file_size > MAX_ARRAY_BYTES:
            _fail(where, f"array '{member}' is {info.file_size} bytes, more than the limit {MAX_ARRAY_BYTES}")
        try:
            with self.archive.open(info) as stream:
                return _stream_array(stream, info, where, dtype, ndim)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, NotImplementedError) as error:
            _fail(where, f"member '{member}' is corrupt: {error}")

    def borders(self, value, parent: str) -> BorderTable:
        """A border table at ``{parent}borders``; ``parent`` ends in "." or ": "."""
        where = f"{parent}borders"
        fields = _object(value, where, ("frac_bits", "values"))
        frac_bits = _int(fields["frac_bits"], f"{where}.frac_bits")
        values = self.array(fields["values"], f"{where}.values", _I32, 2)
        return _construct(parent, BorderTable, frac_bits, values)

    def requant(self, value, parent: str) -> Requantizer:
        """A requantizer at ``{parent}requant``."""
        where = f"{parent}requant"
        has_variant = self.version >= VARIANT_SINCE
        fields = _object(value, where, ("multiplier", "shift", "borders") + (("variant",) if has_variant else ()))
        variant = RequantVariant.BORDER
        if has_variant:
            variants = {v.value: v for v in RequantVariant}
            if not isinstance(fields["variant"], str) or fields["variant"] not in variants:
                _fail(f"{where}.variant", f"expected one of {sorted(variants)}, got {fields['variant']!r:.60}")
            variant = variants[fields["variant"]]
            if VARIANT_VERSIONS[variant] > self.version:
                _fail(f"{where}.variant", f"variant {variant.value!r} exists from format version {VARIANT_VERSIONS[variant]}; "
                                          f"the file is version {self.version}")
        multiplier = self.array(fields["multiplier"], f"{where}.multiplier", multiplier_dtype(self.version), 1)
        shift = self.array(fields["shift"], f"{where}.shift", _I32, 1)
        borders = self.borders(fields["borders"], f"{where}.")
        return _construct(parent, Requantizer, multiplier, shift, borders, variant)


def _stream_array(stream, info: zipfile.ZipInfo, where: str, dtype: np.dtype, ndim: int) -> np.ndarray:
    """Read one NPY member from its open zip stream: the header first (only its bytes are
    decompressed), checked against the prescribed dtype, rank and order and against the member's
    size in the zip directory; then the data straight into one array of that size, and the end of
    the stream (which checks the CRC)."""
    member = info.filename
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"NPY format version {version[0]}.{version[1]} (only 1.0 and 2.0 are allowed)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, stored = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        _fail(where, f"array '{member}' is not a valid .npy file: {error}")
    if stored != dtype:
        _fail(where, f"array '{member}' has dtype {stored.str if stored.kind != 'O' else 'object'}, expected {dtype.str}")
    if len(shape) != ndim:
        _fail(where, f"array '{member}' has shape {shape}, expected {ndim} dimensions")
    if fortran_order:
        _fail(where, f"array '{member}' is stored in Fortran order; the format requires C order")
    data_bytes = info.file_size - stream.tell()
    if math.prod(shape) * dtype.itemsize != data_bytes:
        _fail(where, f"array '{member}' declares shape {shape} but holds {data_bytes} data bytes")
    array = np.empty(shape, dtype=dtype)
    view = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < data_bytes:
        count = stream.readinto(view[filled:])
        if not count:
            _fail(where, f"member '{member}' ends after {filled} of its {data_bytes} data bytes")
        filled += count
    if stream.read(1):
        _fail(where, f"member '{member}' holds more bytes than the zip directory declares")
    return array


def _check_expansion(infos: list[zipfile.ZipInfo], file_bytes: int) -> None:
    """Refuse, from the zip directory alone, a file whose members declare more uncompressed
    bytes than :data:`MAX_EXPANSION` times its size (and :data:`EXPANSION_FLOOR`)."""
    declared = sum(info.file_size for info in infos)
    budget = max(EXPANSION_FLOOR, MAX_EXPANSION * file_bytes)
    if declared > budget:
        largest = max(infos, key=lambda info: info.file_size)
        _fail("", f"its members declare {declared} uncompressed bytes ('{largest.filename}' {largest.file_size}), "
                  f"more than the limit {budget} for a file of {file_bytes} bytes ({MAX_EXPANSION} times its size)")


def _construct(prefix: str, cls, *args, **kwargs):
    """Build a program object; its own validation error (which names the field relative to the
    object) becomes an ArtifactError with ``prefix`` naming where the object is."""
    try:
        return cls(*args, **kwargs)
    except ProgramError as error:
        raise ArtifactError(f"{prefix}{error}") from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error, NotImplementedError) as error:
        _fail(where, f"member '{info.filename}' is corrupt: {error}")


def _read_tensor(value, where: str, reader: _Reader) -> Tensor:
    fields = _object(value, where, ("name", "shape", "quant"))
    name = _str(fields["name"], f"{where}.name")
    where = f"tensor '{name}'"
    shape = _int_list(fields["shape"], f"{where}.shape")
    if len(shape) not in (1, 3) or min(shape) < 1:
        _fail(f"{where}.shape", f"must be [C, H, W] or [F] of positive sizes, got {shape}")
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        _fail(f"{where}.shape", f"{shape} has more than {MAX_TENSOR_ELEMENTS} elements")
    quant = fields["quant"]
    if not isinstance(quant, dict) or quant.get("kind") not in ("quantized", "accumulator"):
        _fail(f"{where}.quant", "expected an object with kind 'quantized' or 'accumulator'")
    if quant["kind"] == "quantized":
        q = _object(quant, f"{where}.quant", ("kind", "bits", "signed", "scale", "zero_point"))
        if not isinstance(q["signed"], bool):
            _fail(f"{where}.quant.signed", f"expected true or false, got {q['signed']!r:.60}")
        params = _construct(f"{where}: ", QuantParams, _int(q["bits"], f"{where}.quant.bits"), q["signed"],
                            _number(q["scale"], f"{where}.quant.scale"), _int(q["zero_point"], f"{where}.quant.zero_point"))
    else:
        q = _object(quant, f"{where}.quant", ("kind", "scale"))
        params = _construct(f"{where}: ", AccumulatorParams, reader.array(q["scale"], f"{where}.quant.scale", _F64, 1))
    return _construct("", Tensor, name, tuple(shape), params)


def _read_op(value, index: int, reader: _Reader, version: int):
    """One op of a file of format ``version``: the fields its type declares since then."""
    if not isinstance(value, dict):
        _fail(f"ops[{index}]", f"expected an object, got {type(value).__name__}")
    type_name, name = value.get("type"), value.get("name")
    kinds = {kind.value: kind for kind in OP_TYPES}
    if not isinstance(type_name, str) or type_name not in kinds:
        _fail(f"ops[{index}].type", f"unknown op type {type_name!r:.60}; known: {sorted(kinds)}")
    kind = kinds[type_name]
    name = _str(name, f"ops[{index}].name")
    where = f"op '{name}' ({type_name})"
    since = getattr(OP_TYPES[kind], "since", 1)
    if since > version:
        _fail(f"ops[{index}].type", f"op type {type_name!r} exists from format version {since}; the file is version {version}")
    specs = tuple(spec for spec in op_fields(OP_TYPES[kind]) if spec.since <= version)
    fields = _object(value, where, ("type", "name") + tuple(spec.name for spec in specs))
    args = {}
    # Weights last: their stored dtype follows from the op's weight_bits.
    for spec in sorted(specs, key=lambda spec: spec.kind is FieldKind.WEIGHTS):
        raw, at = fields[spec.name], f"{where}: {spec.name}"
        if spec.kind is FieldKind.TENSOR:
            args[spec.name] = _str(raw, at)
        elif spec.kind is FieldKind.INT:
            args[spec.name] = _int(raw, at)
        elif spec.kind is FieldKind.PAIR:
            args[spec.name] = tuple(_int_list(raw, at, 2))
        elif spec.kind is FieldKind.OPTIONAL_REQUANT and raw is None:
            args[spec.name] = None
        elif spec.kind in (FieldKind.REQUANT, FieldKind.OPTIONAL_REQUANT):
            args[spec.name] = reader.requant(raw, f"{where}: ")
        elif spec.kind is FieldKind.WEIGHTS:
            args[spec.name] = reader.array(raw, at, weight_dtype(args["weight_bits"]), spec.rank)
        else:
            args[spec.name] = reader.array(raw, at, _VECTOR_DTYPES[spec.kind], spec.rank)
    try:
        return OP_TYPES[kind](name=name, **args)
    except ProgramError as error:
        raise ArtifactError(str(error)) from None


def _read_manifest(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict:
    info = members.get(MANIFEST)
    if info is None:
        _fail("", f"'{MANIFEST}' is missing: not an aquant-sim program")
    if info.file_size > MAX_MANIFEST_BYTES:
        _fail(MANIFEST, f"is {info.file_size} bytes, more than the limit {MAX_MANIFEST_BYTES}")
    data = _read_member(archive, info, MANIFEST)
    try:
        manifest = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:
        _fail(MANIFEST, f"is not valid JSON: {error}")
    if not isinstance(manifest, dict):
        _fail(MANIFEST, "must hold a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        _fail("format", f"expected '{FORMAT_NAME}', got {manifest.get('format')!r:.60}")
    version = manifest.get("version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        _fail("version", f"unknown format version {version!r:.60}; this reader knows {list(KNOWN_VERSIONS)}")
    return _object(manifest, "", ("format", "version", "program", "tensors", "ops"))


def _build_program(manifest: dict, reader: _Reader) -> Program:
    settings = _object(manifest["program"], "program", ("input", "output", "accumulator_bits", "overflow", "input_borders"))
    policies = {policy.value: policy for policy in OverflowPolicy}
    if not isinstance(settings["overflow"], str) or settings["overflow"] not in policies:
        _fail("program.overflow", f"expected one of {sorted(policies)}, got {settings['overflow']!r:.60}")
    for key in ("tensors", "ops"):
        if not isinstance(manifest[key], list):
            _fail(key, f"expected a list, got {type(manifest[key]).__name__}")
    tensors = [_read_tensor(t, f"tensors[{i}]", reader) for i, t in enumerate(manifest["tensors"])]
    ops = [_read_op(op, i, reader, manifest["version"]) for i, op in enumerate(manifest["ops"])]
    return _construct(
        "", Program, tensors, ops,
        _str(settings["input"], "program.input"), _str(settings["output"], "program.output"),
        reader.borders(settings["input_borders"], "program.input_"),
        _int(settings["accumulator_bits"], "program.accumulator_bits"), policies[settings["overflow"]],
    )


def load_program(path) -> Program:
    """Read and validate a program written by :func:`save_program` (or any writer that follows
    ``docs/artifact.md``). Every problem raises one :class:`ArtifactError` naming the file and
    the field."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_expansion(infos, path.stat().st_size)
            members = {}
            for info in infos:
                if info.filename in members:
                    _fail("", f"member '{info.filename}' appears twice")
                if info.flag_bits & 0x1:
                    _fail("", f"member '{info.filename}' is encrypted")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    _fail("", f"member '{info.filename}' uses compression method {info.compress_type}; only stored and deflated are allowed")
                members[info.filename] = info
            reader = _Reader(archive, members)
            manifest = _read_manifest(archive, members)
            reader.version = manifest["version"]
            program = _build_program(manifest, reader)
            unused = sorted(set(members) - reader.used - {MANIFEST})
            if unused:
                _fail("", f"member '{unused[0]}' is not referenced by the manifest")
            return program
    except ArtifactError as error:
        # Names come from the file: a newline in one must not split the one-line message.
        raise ArtifactError(f"{path}: " + str(error).replace("\n", "\\n")) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError, ValueError) as error:
        raise ArtifactError(f"{path}: not a readable zip file: {error}") from None
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read: {error.strerror or error}") from None
