import numpy as np
import onnx
import pytest
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts.onnx_metadata import read_contract, read_metadata
from reid_export.contract import METADATA_KEY
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx
from reid_export.runtimes import make_runtime
from reid_export.verified.parity import check_parity


def test_export_passes_the_checker_with_dynamic_batch_and_opset(tiny_onnx):
    proto = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    assert [d.dim_value for d in dims[1:]] == [3, TINY.height, TINY.width]
    assert [o.name for o in proto.graph.output] == ["embedding"]


def test_contract_travels_in_the_metadata(tiny_onnx):
    assert METADATA_KEY in read_metadata(tiny_onnx)
    assert read_contract(tiny_onnx) == TINY  # l2_normalized=True is the export default, as in TINY


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_pytorch_at_any_batch_size(tiny_onnx, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 32), dtype=np.float32)
    parity = check_parity(make_tiny_model(), tiny_onnx, x)
    assert parity["cosine_min"] > 0.99999 and parity["max_abs_diff"] < 1e-4


def test_parity_check_detects_a_different_model(tiny_onnx):
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 32), dtype=np.float32)
    parity = check_parity(make_tiny_model(seed=7), tiny_onnx, x)
    assert parity["cosine_min"] < 0.999


def test_unnormalised_export_records_it_and_outputs_raw_embeddings(tmp_path):
    path = export_onnx(make_tiny_model(), tmp_path / "raw.onnx", l2_normalize=False, exporter="torchscript")
    assert read_contract(path).l2_normalized is False
    with make_runtime("onnxruntime", path) as rt:
        emb = rt.infer(np.ones((2, 3, 64, 32), dtype=np.float32))["embedding"]
    assert not np.allclose(np.linalg.norm(emb, axis=1), 1.0)


def test_existing_output_is_not_overwritten(tiny_onnx):
    before = tiny_onnx.read_bytes()
    with pytest.raises(ExportError, match="already exists.*--overwrite"):
        export_onnx(make_tiny_model(seed=5), tiny_onnx)
    assert tiny_onnx.read_bytes() == before


def test_onnx_without_contract_is_refused_by_runtimes(tmp_path, tiny_onnx):
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ExportError, match="no 'reid_export.preprocess' metadata"):
        make_runtime("onnxruntime", bare).activate()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ExportError, match="garbage.onnx"):
        read_contract(garbage)
