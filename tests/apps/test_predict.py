"""Course-project outputs, end to end on a course layout built from the tiny synthetic set."""

import csv

import pytest
from course_layout import write_course
from tiny_models import make_tiny_model

from reid_export.apps.predict import predict_course
from reid_export.data.attributes import ATTRIBUTE_NAMES
from reid_export.errors import ReidExportError
from reid_export.export.onnx import export_onnx


@pytest.fixture(scope="module")
def course(tiny_market, tmp_path_factory):
    # attribute columns in reverse order: the CSV is read by header name
    return write_course(tiny_market, tmp_path_factory.mktemp("course") / "c", columns=list(reversed(ATTRIBUTE_NAMES)))


@pytest.fixture(scope="module")
def attribute_onnx(tmp_path_factory):
    return export_onnx(make_tiny_model(attributes=True), tmp_path_factory.mktemp("m") / "attr.onnx", with_attributes=True)


def test_ranking_file_has_one_line_per_query_in_the_course_format(course, attribute_onnx, tmp_path):
    files = predict_course(course, str(attribute_onnx), tmp_path, top_k=5, progress=False)
    assert [f.name for f in files] == ["reid_test.txt", "classification_test.csv"]
    lines = (tmp_path / "reid_test.txt").read_text().splitlines()
    queries = sorted(p.name for p in (course / "queries").iterdir())
    test_names = {p.name for p in (course / "test").iterdir()}
    assert [line.split(": ")[0] for line in lines] == queries
    for line in lines:
        ranked = line.split(": ")[1].split(", ")
        assert len(ranked) == 5 and len(set(ranked)) == 5 and set(ranked) <= test_names


def test_attribute_file_has_every_test_image_and_valid_codes(course, attribute_onnx, tmp_path):
    predict_course(course, str(attribute_onnx), tmp_path, progress=False)
    with open(tmp_path / "classification_test.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", *ATTRIBUTE_NAMES]
    assert sorted(r[0] for r in rows[1:]) == sorted(p.name for p in (course / "test").iterdir())
    for row in rows[1:]:
        codes = dict(zip(ATTRIBUTE_NAMES, map(int, row[1:])))
        assert 1 <= codes["age"] <= 4 and all(codes[n] in (1, 2) for n in ATTRIBUTE_NAMES if n != "age")
        assert sum(codes[n] == 2 for n in ATTRIBUTE_NAMES if n.startswith("up") and n != "up") == 1


def test_a_model_without_attributes_writes_only_the_ranking(course, tiny_checkpoint, tmp_path):
    files = predict_course(course, str(tiny_checkpoint), tmp_path, progress=False)
    assert [f.name for f in files] == ["reid_test.txt"]


def test_existing_outputs_are_not_replaced(course, tiny_onnx, tmp_path):
    (tmp_path / "reid_test.txt").write_text("mine\n")
    with pytest.raises(ReidExportError, match="already exists"):
        predict_course(course, str(tiny_onnx), tmp_path, progress=False)
    assert (tmp_path / "reid_test.txt").read_text() == "mine\n"
