"""Saving and loading programs: exact round trips, and one clear ArtifactError for every malformed file."""

import dataclasses
import functools
import io
import json
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquant_sim import artifact
from aquant_sim.artifact import FORMAT_VERSION, load_program, save_program
from aquant_sim.builder import ProgramBuilder
from aquant_sim.errors import ArtifactError
from aquant_sim.lut import Unary, UnaryFunction
from aquant_sim.program import MAX_FIELD_INT, OP_TYPES, BorderGranularity, BorderTable, OpKind, QuantParams, op_fields
from aquant_sim.program_diff import programs_differ
from aquant_sim.rounding import OverflowPolicy, RequantVariant
from aquant_sim.simulator import Backend, Simulator
from aquant_sim.synthetic import Stem, SyntheticConfig, synthetic_resnet
from aquant_sim.testing.dyadic import DyadicConfig, dyadic_configs, dyadic_program
from aquant_sim.testing.programs import programs

from stored_runs import assert_stored_run

SMALL = SyntheticConfig(input_shape=(3, 8, 8), widths=(4, 8), blocks=(1, 1), num_classes=3)


def _same_outputs(a, b, seed=0):
    x = np.random.default_rng(seed).standard_normal((2, *a.input_tensor.shape))
    ra = Simulator(a, Backend.REFERENCE).run(x, keep_tensors=True)
    rb = Simulator(b, Backend.REFERENCE).run(x, keep_tensors=True)
    return ra.tensors.keys() == rb.tensors.keys() and all(np.array_equal(ra.tensors[k], rb.tensors[k]) for k in ra.tensors)


def _assert_round_trip(program, tmp_path):
    """Save and load ``program``: the loaded one simulates to the same tensors and saves to the
    same bytes. Returns it."""
    first = save_program(program, tmp_path / "a.aqp")
    loaded = load_program(first)
    assert _same_outputs(program, loaded)
    assert save_program(loaded, tmp_path / "b.aqp").read_bytes() == first.read_bytes()
    return loaded


@pytest.mark.parametrize("config", [
    SMALL,
    SyntheticConfig(**{**SMALL.__dict__, "stem": Stem.IMAGENET, "input_shape": (3, 16, 16), "weight_bits": 12,
                       "granularity": BorderGranularity.LEVEL, "overflow": OverflowPolicy.SATURATE,
                       "accumulator_bits": 24, "frac_bits": 16}),
    SyntheticConfig(**{**SMALL.__dict__, "granularity": BorderGranularity.TENSOR, "act_bits": 2, "weight_bits": 2}),
])
def test_round_trip_synthetic(tmp_path, config):
    """save then load gives a program that simulates to the same tensors and saves to the same bytes."""
    loaded = _assert_round_trip(synthetic_resnet(config), tmp_path)
    assert (loaded.accumulator_bits, loaded.overflow) == (config.accumulator_bits, config.overflow)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dyadic_configs())
def test_round_trip_every_op(tmp_path, config):
    """Programs with every op kind, width, signedness and granularity survive save and load exactly."""
    _assert_round_trip(dyadic_program(config), tmp_path)


@pytest.mark.parametrize("weight_bits, dtype", [(4, "|i1"), (8, "|i1"), (9, "<i2"), (16, "<i2")])
def test_weights_stored_narrow(tmp_path, weight_bits, dtype):
    """Weights are stored at the narrowest of int8/int16 that holds weight_bits, little-endian."""
    path = save_program(synthetic_resnet(SyntheticConfig(**{**SMALL.__dict__, "weight_bits": weight_bits})), tmp_path / "p.aqp")
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        member = manifest["ops"][0]["weight"]
        stored = np.lib.format.read_array(io.BytesIO(archive.read(member)), allow_pickle=False)
    assert stored.dtype.str == dtype


def test_save_is_atomic(tmp_path, monkeypatch):
    """A save that fails midway leaves the previous file intact and no temporary file behind."""
    path = save_program(synthetic_resnet(SMALL), tmp_path / "p.aqp")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        save_program(dyadic_program(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.aqp"]


# --- malformed files -------------------------------------------------------------------------


def _members(program) -> dict:
    manifest, arrays = artifact.program_manifest(program)
    return {"manifest.json": json.dumps(manifest).encode(), **{m: _npy(a) for m, a in arrays.items()}}


@functools.cache
def _valid_members() -> dict:
    return _members(dyadic_program(DyadicConfig(act_bits=4, weight_bits=4)))


@pytest.fixture
def saved():
    """The members of a valid artifact of a program with every op kind (not shown by hypothesis:
    the fuzz tests read it through this fixture, not as a drawn argument)."""
    return dict(_valid_members())


def _write(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _as_version(members: dict, version: int) -> dict:
    """The members of a file of the current format rewritten as format ``version``: the version
    number, without the op fields (and requantizer variants) newer than it, multipliers stored
    int32 where the version predates int64 ones."""
    manifest = json.loads(members["manifest.json"])
    manifest["version"] = version
    for op in manifest["ops"]:
        for spec in op_fields(OP_TYPES[OpKind(op["type"])]):
            if spec.since > version:
                op.pop(spec.name)
        for value in op.values():
            if isinstance(value, dict) and version < artifact.VARIANT_SINCE:
                value.pop("variant")
    result = {**members, "manifest.json": json.dumps(manifest).encode()}
    if artifact.multiplier_dtype(version) != artifact.multiplier_dtype(FORMAT_VERSION):
        for name, data in members.items():
            if name.endswith(".multiplier.npy"):
                result[name] = _npy(np.lib.format.read_array(io.BytesIO(data)).astype(artifact.multiplier_dtype(version)))
    return result


def _op(manifest, name):
    return next(op for op in manifest["ops"] if op["name"] == name)


def _edit(saved, tmp_path, change_manifest=None, arrays=None, drop=()):
    """Write a copy of the artifact with the manifest edited in place and some members replaced."""
    manifest = json.loads(saved["manifest.json"])
    members = dict(saved)
    if change_manifest is not None:
        change_manifest(manifest)
        # "1e400" is valid JSON that parses to infinity; json.dumps cannot write it.
        members["manifest.json"] = json.dumps(manifest).replace('"__1e400__"', "1e400").encode()
    for key, value in (arrays or {}).items():
        members[key(manifest) if callable(key) else key] = value
    for name in drop:
        members.pop(name(manifest) if callable(name) else name)
    return _write(tmp_path / "bad.aqp", members)


def _expect(path, *fragments):
    with pytest.raises(ArtifactError) as caught:
        load_program(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


def _set(path_keys, value):
    """A manifest edit that sets a nested field; path_keys holds keys, indices or ('op', name)."""
    def change(manifest):
        node = manifest
        for key in path_keys[:-1]:
            node = _op(manifest, key[1]) if isinstance(key, tuple) else node[key]
        node[path_keys[-1]] = value
    return change


def _weight(manifest):
    return _op(manifest, "conv1")["weight"]


def _multiplier(manifest):
    return _op(manifest, "conv1")["requant"]["multiplier"]


def _border_values(manifest):
    return _op(manifest, "conv1")["requant"]["borders"]["values"]


def _bias(manifest):
    return _op(manifest, "conv1")["bias"]


MANIFEST_CASES = [
    ("unknown version", _set(["version"], artifact.FORMAT_VERSION + 1), ["version", f"unknown format version {artifact.FORMAT_VERSION + 1}"]),
    ("version as text", _set(["version"], "1"), ["version"]),
    ("wrong format", _set(["format"], "onnx"), ["format", "aquant-sim-program"]),
    ("unknown op type", _set([("op", "conv1"), "type"], "conv3d"), ["ops[0].type", "unknown op type 'conv3d'"]),
    ("dangling tensor", _set([("op", "conv2"), "input"], "nowhere"), ["op 'conv2' (conv2d)", "'nowhere'"]),
    ("bits too large", _set(["tensors", 1, "quant", "bits"], 17), ["tensor 'conv1'", "quant.bits", "2..16"]),
    ("bits too small", _set(["tensors", 1, "quant", "bits"], 1), ["quant.bits"]),
    ("bits as bool", _set(["tensors", 1, "quant", "bits"], True), ["quant.bits", "expected an integer"]),
    ("negative scale", _set(["tensors", 1, "quant", "scale"], -0.5), ["tensor 'conv1'", "quant.scale", "positive"]),
    ("zero scale", _set(["tensors", 1, "quant", "scale"], 0.0), ["quant.scale"]),
    ("infinite scale", _set(["tensors", 1, "quant", "scale"], "__1e400__"), ["quant.scale"]),
    ("scale as text", _set(["tensors", 1, "quant", "scale"], "0.5"), ["quant.scale", "expected a number"]),
    ("zero point off grid", _set(["tensors", 1, "quant", "zero_point"], 99), ["quant.zero_point"]),
    ("frac bits", _set([("op", "conv1"), "requant", "borders", "frac_bits"], 17), ["op 'conv1' (conv2d)", "borders.frac_bits"]),
    ("weight bits", _set([("op", "conv1"), "weight_bits"], 17), ["op 'conv1' (conv2d)", "weight"]),
    ("stride not a pair", _set([("op", "conv1"), "stride"], [1]), ["op 'conv1' (conv2d): stride"]),
    ("stride zero", _set([("op", "conv1"), "stride"], [0, 1]), ["op 'conv1' (conv2d).stride"]),
    ("add weight", _set([("op", "add"), "weight_a"], 1 << 16), ["op 'add' (add).weight_a"]),
    ("missing field", lambda m: _op(m, "conv1").pop("groups"), ["op 'conv1' (conv2d)", "missing field 'groups'"]),
    ("unknown field", _set([("op", "conv1"), "bogus"], 1), ["op 'conv1' (conv2d)", "unknown field 'bogus'"]),
    ("missing requant", _set([("op", "add"), "requant"], None), ["op 'add' (add)", "requant"]),
    ("overflow policy", _set(["program", "overflow"], "clip"), ["program.overflow"]),
    ("accumulator bits", _set(["program", "accumulator_bits"], 64), ["program.accumulator_bits"]),
    ("output undeclared", _set(["program", "output"], "ghost"), ["program.output"]),
    ("absurd shape", _set(["tensors", 1, "shape"], [1 << 20, 1 << 20, 1 << 20]), ["tensor 'conv1'.shape", "elements"]),
    ("shape mismatch", _set(["tensors", 1, "shape"], [4, 8, 9]), ["op 'conv1' (conv2d).output", "declared"]),
    ("tensors not a list", _set(["tensors"], {}), ["tensors", "expected a list"]),
    ("array name", _set([("op", "conv1"), "bias"], "../../etc/passwd"), ["op 'conv1' (conv2d): bias", "member name"]),
    ("array missing", _set([("op", "conv1"), "bias"], "arrays/none.npy"), ["op 'conv1' (conv2d): bias", "missing"]),
]


@pytest.mark.parametrize("label, change, fragments", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_malformed_manifest(saved, tmp_path, label, change, fragments):
    """Each malformed manifest field raises one ArtifactError that names the field."""
    _expect(_edit(saved, tmp_path, change), *fragments)


ARRAY_CASES = [
    ("multiplier below 2^30", _multiplier, np.array([1 << 29] * 4, dtype="<i8"), ["op 'conv1' (conv2d): requant.multiplier", "[2^30, 2^31)"]),
    ("multiplier above 2^31", _multiplier, np.array([1 << 31] * 4, dtype="<i8"), ["op 'conv1' (conv2d): requant.multiplier", "[2^30, 2^31)"]),
    ("multiplier of int32", _multiplier, np.array([1 << 30] * 4, dtype="<i4"), ["requant.multiplier", "dtype <i4", "expected <i8"]),
    ("border zero", _border_values, None, ["op 'conv1' (conv2d): requant.borders.values", "[1, 2^F"]),
    ("weight dtype", _weight, np.zeros((4, 3, 3, 3), dtype="<i4"), ["op 'conv1' (conv2d): weight", "dtype <i4", "expected |i1"]),
    ("weight rank", _weight, np.zeros((4, 27), dtype="i1"), ["op 'conv1' (conv2d): weight", "shape (4, 27), expected 4 dimensions"]),
    ("weight out of range", _weight, np.full((4, 3, 3, 3), 9, dtype="i1"), ["op 'conv1' (conv2d).weight", "4-bit"]),
    ("big-endian bias", _bias, np.zeros(4, dtype=">i4"), ["bias", "dtype >i4"]),
    ("bias length", _bias, np.zeros(5, dtype="<i4"), ["op 'conv1' (conv2d).bias"]),
    ("object dtype", _bias, None, ["bias", "object"]),
    ("fortran order", _weight, np.asfortranarray(np.zeros((4, 3, 3, 3), dtype="i1")), ["weight", "Fortran"]),
]


@pytest.mark.parametrize("label, member, array, fragments", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_malformed_array(saved, tmp_path, label, member, array, fragments):
    """Each array of the wrong value, dtype, shape or layout raises one ArtifactError naming the field."""
    if label == "border zero":
        values = np.lib.format.read_array(io.BytesIO(saved[_border_values(json.loads(saved["manifest.json"]))]))
        data = _npy(np.zeros_like(values))
    elif label == "object dtype":
        data = _npy(np.array([1, 2, 3, 4], dtype=object), allow_pickle=True)
    else:
        data = _npy(array)
    _expect(_edit(saved, tmp_path, arrays={member: data}), *fragments)


def test_header_larger_than_data(saved, tmp_path):
    """An array whose header declares more data than the member holds is refused before reading."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i4", "fortran_order": False, "shape": (1 << 40,)})
    _expect(_edit(saved, tmp_path, arrays={_bias: header.getvalue() + b"\0" * 16}), "bias", "declares shape")


def test_missing_member(saved, tmp_path):
    """An array the manifest references but the zip lacks is named."""
    _expect(_edit(saved, tmp_path, drop=[_multiplier]), "requant.multiplier", "missing from the file")


def test_missing_manifest(saved, tmp_path):
    """A zip without manifest.json is not a program."""
    _expect(_edit(saved, tmp_path, drop=["manifest.json"]), "manifest.json", "missing")


def test_unreferenced_member(saved, tmp_path):
    """A member that the manifest does not reference is refused (the format has no optional members)."""
    _expect(_edit(saved, tmp_path, arrays={"arrays/extra.npy": _npy(np.zeros(1))}), "arrays/extra.npy", "not referenced")


@pytest.mark.parametrize("text, fragment", [
    (b"{not json", "not valid JSON"),
    (b'{"format": NaN}', "not valid JSON"),
    (b'{"format": "aquant-sim-program", "format": "x"}', "appears twice"),
    (b"[1, 2]", "JSON object"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
])
def test_bad_json(saved, tmp_path, text, fragment):
    """Invalid JSON, NaN constants, duplicate keys, non-objects and deep nesting raise ArtifactError."""
    _expect(_edit(saved, tmp_path, arrays={"manifest.json": text}), "manifest.json", fragment)


def test_not_a_zip(tmp_path):
    """A file that is not a zip raises ArtifactError."""
    path = tmp_path / "x.aqp"
    path.write_bytes(b"this is not a zip file" * 10)
    _expect(path, "not a readable zip")


def test_missing_file(tmp_path):
    """A path that does not exist raises ArtifactError, not OSError."""
    _expect(tmp_path / "none.aqp", "cannot read")


def test_truncated(saved, tmp_path):
    """A file cut anywhere raises ArtifactError."""
    data = _write(tmp_path / "ok.aqp", saved).read_bytes()
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 10):
        path = tmp_path / "cut.aqp"
        path.write_bytes(data[:cut])
        _expect(path)


def test_bad_crc(saved, tmp_path):
    """A flipped byte inside a stored member fails its CRC check and names the field."""
    path = tmp_path / "crc.aqp"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in saved.items():
            archive.writestr(name, data)
    manifest = json.loads(saved["manifest.json"])
    raw = bytearray(path.read_bytes())
    target = saved[_bias(manifest)]
    offset = raw.find(target) + len(target) - 1
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    _expect(path, "op 'conv1' (conv2d): bias", "corrupt")


def _load_or_one_line_error(path):
    """Load ``path``; a program that loads must save and load again to the same bytes and
    simulate a batch on both backends to the same integers without any error, and a refusal must
    be an ArtifactError of one line naming the file (as ``_expect`` requires)."""
    try:
        program = load_program(path)
    except ArtifactError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        return
    again = save_program(program, path.with_suffix(".again.aqp"))
    assert save_program(load_program(again), path.with_suffix(".third.aqp")).read_bytes() == again.read_bytes()
    x = np.random.default_rng(0).standard_normal((2, *program.input_tensor.shape))
    fast, slow = (Simulator(program, backend).run(x, keep_tensors=True) for backend in (Backend.NUMBA, Backend.REFERENCE))
    assert all(np.array_equal(fast.tensors[name], slow.tensors[name]) for name in slow.tensors)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_bytes_never_crash(tmp_path, data):
    """Random byte flips and cuts of a valid file (one of :data:`FUZZED`) either load (and round-trip) or raise a one-line
    ArtifactError naming the file, nothing else."""
    raw = bytearray(_write(tmp_path / "ok.aqp", data.draw(st.sampled_from(FUZZED))()).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(1, len(raw)))]
    path = tmp_path / "fuzz.aqp"
    path.write_bytes(bytes(raw))
    _load_or_one_line_error(path)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=False),
                        st.text(max_size=5), st.lists(st.integers(-3, 3), max_size=4), st.just({}))


def _leaves(node, prefix=()):
    """Every path into a manifest: each object field, each list element, and the node itself."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, prefix + (i,))
    yield prefix


@functools.cache
def _resnet_members() -> dict:
    """A program with a 1x1 conv (the downsample), whose window ignores its dilation."""
    return _members(synthetic_resnet(SMALL))


@functools.cache
def _tflite_members() -> dict:
    """The TFLite importer's program: FLOAT64's int64 multipliers, TFLite's add, average and mean."""
    import tempfile

    from aquant_sim.importers.tflite_model import import_tflite
    from aquant_sim.testing.tflite_models import small_cnn

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "cnn.tflite").write_bytes(small_cnn(per_channel=True)[0])
        return _members(import_tflite(Path(folder) / "cnn.tflite").program)


@functools.cache
def _version6_members() -> dict:
    """The members of the version-6 fixture (int32 multipliers)."""
    with zipfile.ZipFile(Path(__file__).parent / "data" / "artifact_v6" / "program.aqp") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


FUZZED = [_valid_members, _resnet_members, _tflite_members, _version6_members]
"""The files the fuzz tests mutate: every op kind (BORDER), a 1x1 conv, the TFLite importer's
program (the current format) and the version-6 fixture."""


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_manifest_never_crashes(tmp_path, data):
    """Any manifest field or list element replaced by any JSON value either loads (and then
    round-trips and simulates) or raises a one-line ArtifactError naming the file."""
    saved = data.draw(st.sampled_from(FUZZED))()
    manifest = json.loads(saved["manifest.json"])
    paths = [p for p in _leaves(manifest) if p]
    target = data.draw(st.sampled_from(paths))
    node = manifest
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = data.draw(JSON_VALUES)
    path = _write(tmp_path / "m.aqp", {**saved, "manifest.json": json.dumps(manifest).encode()})
    _load_or_one_line_error(path)


def test_huge_dilation_of_a_1x1_conv_is_refused(tmp_path):
    """Regression (fuzzing, issue 10): a dilation of 2^64 on a 1x1 conv passed validation (its
    window span is 1 whatever the dilation) and then crashed the numba kernel with an
    OverflowError; every integer field is now bounded at load."""
    members = _members(synthetic_resnet(SMALL))
    path = _edit(members, tmp_path, _set([("op", "layer2.0.downsample"), "dilation"], [1 << 64, 1]))
    _expect(path, "op 'layer2.0.downsample' (conv2d).dilation", f"<= {MAX_FIELD_INT}")


def test_padding_that_outgrows_the_tensor_limit_is_refused(saved, tmp_path):
    """A padding within the field bound that would pad a small input beyond the tensor limit (a
    simulation would allocate the padded map) is refused at load, naming the op."""
    path = _edit(saved, tmp_path, _set([("op", "avgpool"), "padding"], [MAX_FIELD_INT, MAX_FIELD_INT]))
    _expect(path, "op 'avgpool' (avgpool2d).padding", "elements")


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local header and the central directory
    (what a hostile file can claim without holding the bytes)."""
    raw = bytearray(path.read_bytes())
    name = member.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            if raw[start + name_offset : start + name_offset + len(name)] == name:
                raw[start + size_offset : start + size_offset + 4] = struct.pack("<I", size)
            start += 4
    path.write_bytes(bytes(raw))


def _load_measured(path):
    """Load ``path`` expecting a refusal; return the one-line message, the seconds and the peak
    of traced memory it took."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = _expect(path)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return message, seconds, peak


@pytest.mark.parametrize("declared", [2047 << 20, 512 << 20])
def test_member_declaring_gigabytes_is_refused_quickly(saved, tmp_path, declared):
    """Regression (fuzzing, issue 10): a 2 MB file whose weight member declared 2,047 MiB made the
    loader allocate 8 GiB (MemoryError after 81 s); a 515 KiB file declaring 512 MiB peaked at
    2.6 GiB. Both are refused from the zip directory: one line, within a second, under 100 MB."""
    manifest = json.loads(saved["manifest.json"])
    member = _weight(manifest)
    weight = np.zeros((declared - 128,), dtype=np.int8)[: 1 << 20]  # 1 MiB of the claimed data
    path = _write(tmp_path / "bomb.aqp", {**saved, member: _npy(weight)})
    _patch_declared_size(path, member, declared)
    message, seconds, peak = _load_measured(path)
    assert "uncompressed bytes" in message and member in message, message
    assert seconds < 1.0 and peak < 100 << 20, (seconds, peak)


def test_real_zip_bomb_is_refused_before_decompression(saved, tmp_path):
    """A member that really deflates a thousandfold (64 MiB of zeros in a ~70 KiB file) is
    refused before any of it is decompressed, under 100 MB of memory."""
    manifest = json.loads(saved["manifest.json"])
    bomb = _npy(np.zeros((64 << 20,), dtype=np.int8))
    path = tmp_path / "bomb.aqp"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in {**saved, _weight(manifest): bomb}.items():
            archive.writestr(name, data)
    del bomb
    message, seconds, peak = _load_measured(path)
    assert "uncompressed bytes" in message, message
    assert seconds < 1.0 and peak < 100 << 20, (seconds, peak)


def test_arrays_stream_into_one_allocation(tmp_path):
    """Loading reads each array member straight into its array: the peak of traced memory while
    loading stays within a small multiple of the program's array bytes (the weights are widened
    to int32 once, by the program)."""
    program = synthetic_resnet(SyntheticConfig(**{**SMALL.__dict__, "widths": (64, 128), "input_shape": (3, 16, 16)}))
    path = save_program(program, tmp_path / "p.aqp")
    _, arrays = artifact.program_manifest(program)
    array_bytes = sum(a.nbytes for a in arrays.values())
    tracemalloc.start()
    load_program(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * array_bytes, (peak, array_bytes)


def test_limits_are_enforced(saved, tmp_path, monkeypatch):
    """Members larger than the size limit are refused from the zip directory, before any read."""
    monkeypatch.setattr(artifact, "MAX_ARRAY_BYTES", 64)
    _expect(_write(tmp_path / "p.aqp", saved), "more than the limit")


def test_round_trip_weight_zero_points(tmp_path):
    """Version 2 stores weight zero-points: non-zero z_w survive save and load exactly."""
    base = load_program(Path(__file__).parent / "data" / "artifact_v1" / "program.aqp")
    rng = np.random.default_rng(0)
    ops = [dataclasses.replace(op, weight_zero_point=rng.integers(-(1 << (op.weight_bits - 1)), 1 << (op.weight_bits - 1), op.weight.shape[0]))
           if op.kind in (OpKind.CONV2D, OpKind.LINEAR) else op for op in base.ops]
    program = dataclasses.replace(base, ops=tuple(ops))
    loaded = _assert_round_trip(program, tmp_path)
    for before, after in zip(program.ops, loaded.ops):
        if before.kind in (OpKind.CONV2D, OpKind.LINEAR):
            assert np.any(after.weight_zero_point) and np.array_equal(before.weight_zero_point, after.weight_zero_point)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(programs())
def test_round_trip_requantizer_variants(tmp_path, program):
    """Drawn programs whose requantizers use every variant (BORDER, GEMMLOWP, FP32, FLOAT64's
    53-bit multipliers, FP32_ADD, TFLite's add, average and mean) save and load back identical in
    every field, to the same integers and the same bytes."""
    loaded = _assert_round_trip(program, tmp_path)
    assert programs_differ(program, loaded) == ""


def test_unknown_variant_is_refused(saved, tmp_path):
    """A requantizer variant that the format does not know is refused, naming the op and field."""
    path = _edit(saved, tmp_path, _set([("op", "conv1"), "requant", "variant"], "tflite-single-rounding"))
    _expect(path, "op 'conv1' (conv2d): requant.variant", "gemmlowp")


def test_variant_with_borders_is_refused(saved, tmp_path):
    """A runtime variant with a border table other than round-to-nearest is refused: such a
    variant has no fraction for borders to decide."""
    path = _edit(saved, tmp_path, _set([("op", "conv1"), "requant", "variant"], "gemmlowp"))
    _expect(path, "op 'conv1' (conv2d): requant.borders", "no fraction")


V2 = Path(__file__).parent / "data" / "artifact_v2"


@pytest.mark.parametrize("backend", list(Backend))
def test_version2_file_loads_with_border_requantizers(backend):
    """A version-2 file (written before requantizers recorded their variant) loads with every
    requantizer BORDER and simulates to the integers stored beside it."""
    program = load_program(V2 / "program.aqp")
    assert all(op.requant.variant is RequantVariant.BORDER for op in program.ops if getattr(op, "requant", None))
    assert_stored_run(program, backend, V2, Path(__file__).parent / "data" / "artifact_v1" / "input.npy")


def _gate_program():
    """A SiLU table with one row per channel (learned borders), a global pool, a Hardsigmoid table
    and the squeeze-excitation product: format 5's op types."""
    q8, q4, nearest = QuantParams(8, False, 0.05, 20), QuantParams(4, True, 1 / 8, -8), BorderTable.nearest(8)
    b = ProgramBuilder("x", (3, 5, 5), q8, nearest)
    x = b.lut("act", "x", Unary(UnaryFunction.SILU), q8, BorderTable(8, [[128], [1], [256]]))
    pooled = b.global_avgpool("pool", x, q8, nearest)
    gate = b.lut("gate", pooled, Unary(UnaryFunction.HARDSIGMOID), q4, nearest)
    return b.build(b.mul("scale", x, gate, q8, nearest))


def test_round_trip_lookup_tables_and_products(tmp_path):
    """lut (its (G, 2^b) table as an i32 array) and mul save and load to the same integers and
    bytes (in a file of the current version, which holds format 5's op types)."""
    program = _gate_program()
    loaded = _assert_round_trip(program, tmp_path)
    assert [op.kind for op in loaded.ops] == [OpKind.LUT, OpKind.GLOBAL_AVGPOOL, OpKind.LUT, OpKind.MUL]
    assert loaded.ops[0].table.shape == (3, 256) and np.array_equal(loaded.ops[0].table, program.ops[0].table)
    assert json.loads(zipfile.ZipFile(tmp_path / "a.aqp").read("manifest.json"))["version"] == FORMAT_VERSION


V5 = Path(__file__).parent / "data" / "artifact_v5"


@pytest.mark.parametrize("backend", list(Backend))
def test_version5_file_loads_with_symmetric_padding(backend):
    """A version-5 file (lookup tables and a product, written before version 6 added padding_end
    and concat) loads with every conv padded symmetrically and simulates to the integers stored
    beside it."""
    program = load_program(V5 / "program.aqp")
    assert {op.kind for op in program.ops} >= {OpKind.LUT, OpKind.MUL, OpKind.CONV2D}
    convs = [op for op in program.ops if op.kind is OpKind.CONV2D]
    assert all(op.padding != (0, 0) and op.padding_end == op.padding for op in convs)
    assert_stored_run(program, backend, V5)


def test_lookup_table_in_an_older_version_is_refused(tmp_path):
    """A version-4 file cannot hold the op types of version 5."""
    members = _members(_gate_program())
    path = _edit(members, tmp_path, _set(["version"], 4))
    _expect(path, "ops[0].type", "op type 'lut' exists from format version 5; the file is version 4")


def _dense_program():
    """A program with a concat and an asymmetrically padded conv (the ops of format version 6)."""
    rng = np.random.default_rng(5)
    quant, table = QuantParams(4, False, 0.1, 3), BorderTable(8, rng.integers(1, 257, size=(1, 15)))
    builder = ProgramBuilder("x", (2, 6, 6), quant, table)
    conv = builder.conv2d("conv", "x", rng.integers(-8, 8, size=(3, 2, 3, 3)), 4, np.full(3, 0.05), np.zeros(3, dtype=np.int64),
                          QuantParams(4, False, 0.2, 1), table, stride=2, padding=(0, 1), padding_end=(1, 0))
    pooled = builder.avgpool("pool", "x", 2, 2, QuantParams(4, False, 0.1, 3), table)
    return builder.build(builder.concat("cat", [conv, pooled], quant, table))


def test_round_trip_concat_and_asymmetric_padding(tmp_path):
    """A concat and a conv's padding_end save and load with the same fields and integers."""
    program = _dense_program()
    loaded = _assert_round_trip(program, tmp_path)
    assert [op.kind for op in loaded.ops] == [OpKind.CONV2D, OpKind.AVGPOOL2D, OpKind.CONCAT]
    assert (loaded.ops[0].padding, loaded.ops[0].padding_end) == ((0, 1), (1, 0))


def test_concat_in_a_version5_file_is_refused(tmp_path):
    """An op type newer than the file's format version is refused, naming the op and both versions
    (and a version-5 file cannot hold padding_end either: it is an unknown field there)."""
    members = _as_version(_members(_dense_program()), 5)
    _expect(_write(tmp_path / "old.aqp", members), "ops[2].type", "'concat' exists from format version 6", "version 5")
    manifest = json.loads(members["manifest.json"])
    manifest["ops"] = manifest["ops"][:1]
    manifest["ops"][0]["padding_end"] = [1, 0]
    members["manifest.json"] = json.dumps(manifest).encode()
    _expect(_write(tmp_path / "old.aqp", members), "unknown field 'padding_end'")


V6 = Path(__file__).parent / "data" / "artifact_v6"


@pytest.mark.parametrize("backend", list(Backend))
def test_version6_file_loads_with_tflite_variants(backend, tmp_path):
    """A version-6 file (int32 multipliers; TFLite's add, average and mean variants, GEMMLOWP, a
    conv padded at its end, written by main before version 7) loads with its max pooling padded
    alike on both sides, simulates to the integers stored beside it, and saves as the current
    version to a file that loads back identical."""
    program = load_program(V6 / "program.aqp")
    variants = {op.requant.variant for op in program.ops if getattr(op, "requant", None) is not None}
    assert variants == {RequantVariant.GEMMLOWP, RequantVariant.TFLITE_ADD, RequantVariant.TFLITE_AVGPOOL, RequantVariant.TFLITE_MEAN}
    assert any(op.kind is OpKind.CONV2D and op.padding_end != op.padding for op in program.ops)
    assert [op.padding_end == op.padding for op in program.ops if op.kind is OpKind.MAXPOOL2D] == [True]
    assert_stored_run(program, backend, V6)
    again = load_program(save_program(program, tmp_path / "current.aqp"))
    assert json.loads(zipfile.ZipFile(tmp_path / "current.aqp").read("manifest.json"))["version"] == FORMAT_VERSION == 8
    assert programs_differ(program, again) == ""


def _pooled_program():
    """A conv, then TF's "SAME" 3x3/2 max pooling of its even-sized output: 0 before, 1 after."""
    rng = np.random.default_rng(8)
    quant, table = QuantParams(4, False, 0.1, 3), BorderTable(8, rng.integers(1, 257, size=(1, 15)))
    builder = ProgramBuilder("x", (2, 6, 6), quant, table)
    conv = builder.conv2d("conv", "x", rng.integers(-8, 8, size=(3, 2, 3, 3)), 4, np.full(3, 0.05), np.zeros(3, dtype=np.int64),
                          QuantParams(4, False, 0.2, 1), table, padding=1)
    return builder.build(builder.maxpool("pool", conv, 3, 2, padding=0, padding_end=(1, 1)))


def test_round_trip_max_pooling_padding_end(tmp_path):
    """A max pooling's padding_end saves (format 8) and loads with the same fields and integers."""
    loaded = _assert_round_trip(_pooled_program(), tmp_path)
    pool = loaded.ops[1]
    assert (pool.kind, pool.padding, pool.padding_end, loaded.output_tensor.shape) == (OpKind.MAXPOOL2D, (0, 0), (1, 1), (3, 3, 3))
    assert json.loads(zipfile.ZipFile(tmp_path / "a.aqp").read("manifest.json"))["version"] == 8


def test_version7_file_loads_with_symmetric_max_pooling(saved, tmp_path):
    """A version-7 file (written before version 8 added the max pooling's padding_end) loads with
    every max pooling padded after as before, the program it was written from."""
    current = load_program(_write(tmp_path / "v8.aqp", saved))
    old = load_program(_write(tmp_path / "v7.aqp", _as_version(saved, 7)))
    pools = [op for op in old.ops if op.kind is OpKind.MAXPOOL2D]
    assert pools and all(op.padding == op.padding_end != (0, 0) for op in pools)
    assert programs_differ(old, current) == ""


def test_max_pooling_padding_end_in_a_version7_file_is_refused(tmp_path):
    """Format 7 has no max-pooling padding_end: the field is unknown there, named with the op."""
    members = _as_version(_members(_pooled_program()), 7)
    manifest = json.loads(members["manifest.json"])
    _op(manifest, "pool")["padding_end"] = [1, 1]
    members["manifest.json"] = json.dumps(manifest).encode()
    _expect(_write(tmp_path / "old.aqp", members), "op 'pool' (maxpool2d)", "unknown field 'padding_end'")


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_imported_tflite_programs_round_trip(tmp_path, per_channel):
    """The TFLite importer's programs (FLOAT64's 53-bit multipliers, stored int64, beside
    TFLite's add, average and mean variants) save and load back identical, every field, and
    save again to the same bytes."""
    from aquant_sim.importers.tflite_model import import_tflite
    from aquant_sim.testing.tflite_models import small_cnn

    (tmp_path / "cnn.tflite").write_bytes(small_cnn(per_channel=per_channel)[0])
    program = import_tflite(tmp_path / "cnn.tflite").program
    fc = program.ops[-1]
    assert fc.requant.variant is RequantVariant.FLOAT64 and fc.requant.multiplier.min() >= 1 << 52
    loaded = _assert_round_trip(program, tmp_path)
    assert programs_differ(program, loaded) == ""


def test_every_variant_has_a_format_version():
    """The reader knows from which format version each requantizer variant may appear."""
    assert set(artifact.VARIANT_VERSIONS) == set(RequantVariant)
    assert max(artifact.VARIANT_VERSIONS.values()) <= FORMAT_VERSION


@pytest.mark.parametrize("variant", [v for v in RequantVariant if artifact.VARIANT_VERSIONS[v] > artifact.VARIANT_SINCE],
                         ids=lambda v: v.value)
def test_variant_newer_than_the_file_is_refused(saved, tmp_path, variant):
    """A requantizer variant in a file older than the format version that introduced it (fp32_add
    in version 3, TFLite's variants in version 5, float64 in version 6) is refused, naming the
    variant and both versions, before its multipliers are read."""
    version = artifact.VARIANT_VERSIONS[variant] - 1
    path = _edit(_as_version(saved, version), tmp_path, _set([("op", "conv1"), "requant", "variant"], variant.value))
    _expect(path, "op 'conv1' (conv2d): requant.variant",
            f"variant '{variant.value}' exists from format version {version + 1}; the file is version {version}")


def test_int64_multipliers_in_a_version6_file_are_refused(saved, tmp_path):
    """Files before version 7 store multipliers as int32: an int64 member there is refused, and
    an int32 one in a version-7 file too (test_malformed_array)."""
    _expect(_edit(saved, tmp_path, _set(["version"], 6)), "requant.multiplier", "dtype <i8, expected <i4")
    assert load_program(_write(tmp_path / "v6.aqp", _as_version(saved, 6))).ops
