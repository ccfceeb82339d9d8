"""Files of artifact format version 1 keep loading and keep meaning the same integers."""

import json
import zipfile
from pathlib import Path

import pytest

from aquant_sim.artifact import load_program
from aquant_sim.errors import ArtifactError
from aquant_sim.program import OP_TYPES, OpKind
from aquant_sim.simulator import Backend

from stored_runs import assert_stored_run

FIXTURE = Path(__file__).parent / "data" / "artifact_v1"


@pytest.fixture(scope="module")
def program():
    return load_program(FIXTURE / "program.aqp")


def test_fixture_covers_every_op_kind_and_granularity(program):
    """The fixture holds every op kind of version 1 and the four border-table shapes, so that it tests them all."""
    assert {op.kind for op in program.ops} == {kind for kind, op_type in OP_TYPES.items() if getattr(op_type, "since", 1) == 1}
    tables = [program.input_borders] + [op.requant.borders for op in program.ops if getattr(op, "requant", None)]
    assert {(t.values.shape[0] > 1, t.values.shape[1] > 1) for t in tables} == {(a, b) for a in (0, 1) for b in (0, 1)}


@pytest.mark.parametrize("backend", list(Backend))
def test_version1_file_simulates_to_the_stored_integers(program, backend):
    """Every tensor of the stored run, and the output, come out equal on both backends."""
    assert_stored_run(program, backend, FIXTURE)


def test_version1_file_has_symmetric_weights(program):
    """A version-1 file has no weight zero-points; conv2d and linear load with z_w = 0."""
    weighted = [op for op in program.ops if op.kind in (OpKind.CONV2D, OpKind.LINEAR)]
    assert weighted and all(op.weight_zero_point.tolist() == [0] * op.weight.shape[0] for op in weighted)


def test_version1_file_has_symmetric_conv_and_max_pooling_padding(program):
    """A version-1 file has no padding_end; every conv2d and max pooling loads with the padding
    after equal to the padding before (and some conv and its max pooling pad, so that the
    default is tested)."""
    for kind in (OpKind.CONV2D, OpKind.MAXPOOL2D):
        windowed = [op for op in program.ops if op.kind is kind]
        assert any(op.padding != (0, 0) for op in windowed), kind
        assert all(op.padding_end == op.padding for op in windowed), kind


def test_version1_manifest_with_a_version2_field_is_refused(tmp_path):
    """A version-1 manifest that holds weight_zero_point (a version-2 field) is an unknown field."""
    with zipfile.ZipFile(FIXTURE / "program.aqp") as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = json.loads(members["manifest.json"])
    conv = next(op for op in manifest["ops"] if op["type"] == "conv2d")
    conv["weight_zero_point"] = conv["bias"]
    members["manifest.json"] = json.dumps(manifest).encode()
    path = tmp_path / "p.aqp"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ArtifactError, match="unknown field 'weight_zero_point'"):
        load_program(path)
