"""`index migrate`: a gallery moved to a second model keeps its items and records where it came from."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from tiny_models import make_tiny_model
from typer.testing import CliRunner

from reid_export.cli import app
from reid_export.errors import ReidExportError
from reid_export.serve.gallery import MANIFEST, Gallery
from reid_export.serve.indexing import add_to_gallery
from reid_export.serve.migrate import migrate_gallery


@pytest.fixture(scope="module")
def second_onnx(tmp_path_factory):
    from reid_export.export.onnx import export_onnx

    return export_onnx(make_tiny_model(seed=1), tmp_path_factory.mktemp("second") / "second.onnx")


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_migrate_keeps_ids_labels_and_times_records_lineage_and_leaves_the_source_alone(
        gallery, second_onnx, tmp_path):
    before = _tree(gallery)
    result = CliRunner().invoke(app, ["index", "migrate", str(gallery), "--model", str(second_onnx),
                                      "-o", str(tmp_path / "v2"), "-q"])
    assert result.exit_code == 0, result.output
    assert _tree(gallery) == before  # the source gallery is only read
    with Gallery.open(gallery) as old, Gallery.open(tmp_path / "v2") as new:
        keep = [(i.id, i.source, i.pid, i.camid, i.added_at, i.sha256) for i in old.items]
        assert [(i.id, i.source, i.pid, i.camid, i.added_at, i.sha256) for i in new.items] == keep
        assert new.model.sha256 == hashlib.sha256(second_onnx.read_bytes()).hexdigest() != old.model.sha256
        assert new.model.arch == "resnet18"
        assert new.lineage["gallery"] == str(gallery.resolve()) and new.lineage["model"]["sha256"] == old.model.sha256
        assert new.lineage["model"]["contract"] == old.model.contract and new.lineage["items"] == len(old)
        assert not np.allclose(new.embeddings, old.embeddings, atol=1e-3)  # embedded again, by the new model
        assert all(new.read_image(i) == old.read_image(i) for i in old.ids)
    assert json.loads((tmp_path / "v2" / MANIFEST).read_text())["lineage"]["model"]["name"] == old.model.name


def test_migrate_refuses_an_existing_output_and_the_source_itself(gallery, built_gallery, second_onnx):
    with pytest.raises(ReidExportError, match="already exists"):
        migrate_gallery(gallery, str(second_onnx), built_gallery, progress=False)
    with pytest.raises(ReidExportError):
        migrate_gallery(gallery, str(second_onnx), gallery, overwrite=True, progress=False)
    assert Gallery.open(gallery).model.sha256 != hashlib.sha256(second_onnx.read_bytes()).hexdigest()


def test_adding_with_another_model_is_refused_naming_both_models_and_migrate(gallery, second_onnx, tiny_market):
    with Gallery.open(gallery) as g:
        built_with = g.model.name
    with pytest.raises(ReidExportError) as refused:
        add_to_gallery(gallery, str(second_onnx), [tiny_market / "query"], progress=False)
    message = str(refused.value)
    assert built_with in message and second_onnx.name in message and "index migrate" in message
