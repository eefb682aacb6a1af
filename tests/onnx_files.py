"""Hand-made ONNX files for tests of what the project refuses (shared by unit tests and the fault sweep)."""

from __future__ import annotations

from pathlib import Path


def onnx_with_external_data_outside(folder: Path, size: int = 8) -> Path:
    """A tiny MatMul graph (input N x 3 x size x size) with a reid-export contract, whose external weights
    file lies one folder above the model (`../w.bin`): a path ONNX would follow out of the model folder."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from reid_export.artefacts.onnx_metadata import METADATA_KEY, set_metadata
    from reid_export.contract import Preprocess

    (folder / "m").mkdir(parents=True)
    w = numpy_helper.from_array(np.ones((size, size), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["embedding"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, size, size])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 3, size, size])],
                              [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(folder / "m" / "model.onnx"), save_as_external_data=True, location="w.bin",
              size_threshold=0)
    (folder / "m" / "w.bin").rename(folder / "w.bin")
    proto = onnx.load(str(folder / "m" / "model.onnx"), load_external_data=False)
    proto.graph.initializer[0].external_data[0].value = "../w.bin"  # points outside the model's folder
    set_metadata(proto, {METADATA_KEY: Preprocess(height=size, width=size).to_json()})
    onnx.save(proto, str(folder / "m" / "model.onnx"))
    return folder / "m" / "model.onnx"
