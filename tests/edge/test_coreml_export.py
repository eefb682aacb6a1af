"""`reid-export coreml`: a real coremltools conversion of a tiny model and the spec check of the saved package
(input, outputs, flexible batch, contract in its user_defined_metadata). Core ML cannot run on Linux: no parity."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("coremltools", reason="the edge extra (coremltools) is not installed")

from reid_export.artefacts.info import inspect
from reid_export.errors import ExportError
from reid_export.export.coreml import check_coreml_spec, export_coreml
from reid_export.export.pt2e import edge_graph

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package(attributes_checkpoint, tmp_path_factory):
    return export_coreml(attributes_checkpoint, tmp_path_factory.mktemp("coreml") / "tiny.mlpackage", log=None)


def test_the_saved_package_passes_its_spec_check(package):
    spec = package.spec  # read back from the saved package, not from the model in memory
    assert package.path.is_dir() and (package.path / "Manifest.json").is_file()
    assert spec.inputs == (("input", (-1, 3, 64, 32)),)  # a flexible batch
    assert spec.extras["output_names"] == ["embedding", "attributes"] and spec.extras["input_dtype"] == "float32"
    assert spec.precision == "fp32" and (spec.contract.height, spec.contract.width) == (64, 32)

    info = inspect(package.path)  # `reid-export inspect model.mlpackage`
    assert info.kind == "coreml-package" and info.contract == spec.contract and info.arch == "resnet18"
    assert info.embedding_dim == 512 and len(info.sha256) == 64


def test_the_spec_check_names_what_differs(package, tiny_model):
    graph = edge_graph(tiny_model)
    other = replace(graph, contract=replace(graph.contract, height=128, width=64))
    with pytest.raises(ExportError, match="spec check failed: its input shape is"):
        check_coreml_spec(package.path, other)


def test_an_existing_package_is_not_replaced_without_overwrite(package, attributes_checkpoint):
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export_coreml(attributes_checkpoint, package.path, log=None)
