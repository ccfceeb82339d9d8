"""The reader of the aquant form: an export of a program reads back as that program (the round
trips are in tests/exporters/test_onnx_export.py); an edited file is refused, naming the node."""

import onnx
import pytest

from aquant_sim.errors import UnsupportedError
from aquant_sim.exporters.onnx_export import to_onnx
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.program_diff import programs_differ
from aquant_sim.synthetic import Stem, SyntheticConfig, synthetic_resnet

PROGRAM = synthetic_resnet(SyntheticConfig(input_shape=(3, 16, 16), widths=(4, 8), blocks=(1, 1), num_classes=3,
                                           stem=Stem.IMAGENET))


def _save(model, tmp_path):
    path = tmp_path / "edited.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_export_reads_back_identical(tmp_path):
    """The ImageNet-stem synthetic ResNet (7x7/2 conv, padded max pooling) reads back identical."""
    assert programs_differ(PROGRAM, import_onnx(_save(to_onnx(PROGRAM), tmp_path)).program) == ""


def test_max_pooling_pads_are_read_per_side(tmp_path):
    """A max pooling's pads [top, left, bottom, right] read as its padding and padding_end: edited
    to [1, 1, 0, 0] (the same output size here), the program differs in padding_end alone; pads
    of another length are refused, naming the node."""
    model = to_onnx(PROGRAM)
    pool = next(node for node in model.graph.node if node.op_type == "MaxPool")
    pads = next(a for a in pool.attribute if a.name == "pads")
    pads.ints[:] = [1, 1, 0, 0]
    read = import_onnx(_save(model, tmp_path)).program
    assert [(op.padding, op.padding_end) for op in read.ops if op.kind.value == "maxpool2d"] == [((1, 1), (0, 0))]
    assert programs_differ(PROGRAM, read) == f"op '{pool.name}' (maxpool2d).padding_end differs"
    pads.ints[:] = [1, 1, 0]
    with pytest.raises(UnsupportedError, match=rf"node '{pool.name}' \(MaxPool\): pads \[1, 1, 0\] must be \[top, left, bottom, right\]"):
        import_onnx(_save(model, tmp_path))


def test_unknown_variant_is_refused(tmp_path):
    """A Requantize naming a variant the contract does not define is refused, naming the node."""
    model = to_onnx(PROGRAM)
    node = next(node for node in model.graph.node if node.op_type == "Requantize")
    next(a for a in node.attribute if a.name == "variant").s = b"round_half_down"
    with pytest.raises(UnsupportedError, match=rf"node '{node.name}' \(Requantize\).*round_half_down"):
        import_onnx(_save(model, tmp_path))


def test_node_outside_the_form_is_named(tmp_path):
    """A standard op the aquant form does not use (here a Sigmoid on the input's levels) is
    refused with its op type."""
    model = to_onnx(PROGRAM)
    first = model.graph.node[0].output[0]
    model.graph.node.insert(1, onnx.helper.make_node("Sigmoid", [first], ["extra"], name="extra"))
    with pytest.raises(UnsupportedError, match=r"node 'extra' \(Sigmoid\): op ai.onnx.Sigmoid is not one of the aquant form"):
        import_onnx(_save(model, tmp_path))
