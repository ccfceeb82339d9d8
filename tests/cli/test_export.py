"""``aquant export``: a program written as ONNX, in both forms, that ``aquant import`` reads back
as the identical program; a program onnxruntime's form cannot hold is one line naming the op."""

from aquant_sim.artifact import load_program, save_program
from aquant_sim.cli import main
from aquant_sim.importers.onnx_qdq import import_onnx
from aquant_sim.program_diff import programs_differ
from aquant_sim.synthetic import SyntheticConfig, synthetic_resnet

SMALL = SyntheticConfig(input_shape=(3, 8, 8), widths=(4, 8), blocks=(1, 1), num_classes=3)


def test_export_then_import_gives_the_program_back(tmp_path, capsys):
    """export (aquant form) then import: the saved program equals the original in every field."""
    program = synthetic_resnet(SMALL)
    save_program(program, tmp_path / "p.aqp")
    assert main(["export", str(tmp_path / "p.aqp"), "--out", str(tmp_path / "p.onnx")]) == 0
    assert "(aquant form)" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "p.onnx"), "--out", str(tmp_path / "back.aqp")]) == 0
    assert programs_differ(program, load_program(tmp_path / "back.aqp")) == ""


def test_imported_model_exports_in_onnxruntime_form(plain_model, tmp_path, capsys):
    """An imported onnxruntime model exports in onnxruntime's form, which imports identically."""
    assert main(["import", str(plain_model), "--out", str(tmp_path / "p.aqp")]) == 0
    code = main(["export", str(tmp_path / "p.aqp"), "--out", str(tmp_path / "ort.onnx"), "--form", "onnxruntime"])
    assert code == 0, capsys.readouterr().err
    assert programs_differ(load_program(tmp_path / "p.aqp"), import_onnx(tmp_path / "ort.onnx").program) == ""


def test_border_program_in_onnxruntime_form_is_a_one_line_error(tmp_path, capsys):
    """A BORDER program asked for in onnxruntime's form: exit 2, one line naming the op and the variant."""
    save_program(synthetic_resnet(SMALL), tmp_path / "p.aqp")
    code = main(["export", str(tmp_path / "p.aqp"), "--out", str(tmp_path / "ort.onnx"), "--form", "onnxruntime"])
    err = capsys.readouterr().err
    assert code == 2 and "border" in err and "aquant form" in err and err.count("\n") == 1, err
    assert not (tmp_path / "ort.onnx").exists()


def test_verify_against_onnxruntime_refuses_the_aquant_form(tmp_path, capsys):
    """verify --against onnxruntime on an aquant-form export: one line saying onnxruntime cannot
    run it, not onnxruntime's traceback."""
    import numpy as np

    save_program(synthetic_resnet(SMALL), tmp_path / "p.aqp")
    assert main(["export", str(tmp_path / "p.aqp"), "--out", str(tmp_path / "p.onnx")]) == 0
    np.save(tmp_path / "x.npy", np.zeros((1, *SMALL.input_shape), dtype=np.float32))
    code = main(["verify", str(tmp_path / "p.onnx"), "--against", "onnxruntime", "--input", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot run the aquant form" in err and err.count("\n") == 1, err
