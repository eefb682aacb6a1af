"""Course-project outputs, end to end on a course layout built from the tiny synthetic set."""

import csv
import shutil

import pytest

from reid_export.checkpoint import save_checkpoint
from reid_export.data.attributes import ATTRIBUTE_NAMES, load_market_attributes
from reid_export.errors import ReidExportError
from reid_export.export.onnx import export_onnx
from reid_export.predict import predict_course

from tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def course(tiny_market, tmp_path_factory):
    """train/ renamed to the course pattern, test/ and queries/ anonymised, annotations from the .mat."""
    root = tmp_path_factory.mktemp("course")
    for folder in ("train", "test", "queries"):
        (root / folder).mkdir()
    for i, p in enumerate(sorted((tiny_market / "bounding_box_train").glob("*.jpg"))):
        pid, cam = p.name[:4], p.name[6]
        shutil.copy(p, root / "train" / f"{pid}_c{cam}_{i:09d}.jpg")
    for folder, source in (("test", "bounding_box_test"), ("queries", "query")):
        for i, p in enumerate(sorted((tiny_market / source).glob("*.jpg"))):
            shutil.copy(p, root / folder / f"{i:06d}.jpg")
    labels = load_market_attributes(tiny_market)["train"]
    with open(root / "annotations_train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *reversed(ATTRIBUTE_NAMES)])  # any column order is allowed
        for pid, codes in sorted(labels.items()):
            writer.writerow([f"{pid:04d}", *[codes[n] for n in reversed(ATTRIBUTE_NAMES)]])
    return root


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
