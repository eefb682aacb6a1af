"""Training on the course layout: detection, the held-out validation split, CSV attributes, layout errors."""

from __future__ import annotations

import pytest
from course_layout import write_course

from reid_export.checkpoint import load_checkpoint, load_model
from reid_export.errors import DataError
from reid_export.training import TrainConfig, detect_layout, load_training_data, train


@pytest.fixture(scope="module")
def course(synth_market, tmp_path_factory):
    return write_course(synth_market, tmp_path_factory.mktemp("course") / "course")


def _config(course, out, **overrides) -> TrainConfig:
    values = dict(recipe="test", data=str(course), out=str(out), arch="resnet18", height=64, width=32, neck="bnneck",
                  epochs=1, batch_size=4, p=2, k=2, lr=1e-3, label_smoothing=0.1, triplet_weight=1.0, val_ids=2,
                  num_workers=0, num_threads=1, device="cpu")
    return TrainConfig(**{**values, **overrides})


def test_layouts_are_told_apart_by_their_folders(synth_market, course):
    assert detect_layout(synth_market) == "market"
    assert detect_layout(course) == "course"


def test_course_split_holds_out_the_last_val_ids_with_one_query_each(course):
    data = load_training_data(course, attributes=True, val_ids=2, progress=False)
    assert data.layout == "course" and data.train_pids == [1, 2, 3, 4]
    assert sorted(s.pid for s in data.query) == [5, 6]
    assert {s.pid for s in data.gallery} == {5, 6} and not {s.path for s in data.query} & {s.path for s in data.gallery}
    assert set(data.attributes) == {1, 2, 3, 4} and set(data.eval_attributes) == {5, 6}


def test_training_on_a_course_folder_evaluates_on_the_held_out_ids(course, tmp_path):
    result = train(_config(course, tmp_path / "course.pt", attributes="auto"), quiet=True)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.recipe["val_ids"] == 2 and ckpt.recipe["attributes"] is True  # resolved from the CSV
    assert {"rank1", "mAP", "attr_mean_accuracy", "attr_mA"} <= set(ckpt.metrics)
    model = load_model(result.checkpoint)
    assert model.config.num_classes == 4 and model.attribute_head is not None


def test_course_ids_without_a_csv_row_train_identity_only(synth_market, tmp_path):
    root = write_course(synth_market, tmp_path / "partial", labelled_pids={1, 2})
    with pytest.warns(UserWarning, match="have no row"):
        data = load_training_data(root, attributes=True, val_ids=2, progress=False)
    _, mask = data.attribute_arrays()
    assert set(data.attributes) == {1, 2} and data.eval_attributes is None
    assert mask.tolist() == [s.pid in (1, 2) for s in data.train]


def test_course_csv_without_rows_for_the_training_ids_is_an_error(synth_market, tmp_path):
    root = write_course(synth_market, tmp_path / "unlabelled", labelled_pids={6})
    with pytest.warns(UserWarning):
        with pytest.raises(DataError, match=r"annotations_train.csv has no row for any of the 4 training ids.*Fix"):
            train(_config(root, tmp_path / "m.pt", attributes=True), quiet=True)


def test_too_many_held_out_ids_is_an_error_naming_val_ids(course, tmp_path):
    with pytest.raises(DataError, match=r"val_ids = 5 .* needs at least 7.*set val_ids to at most 4"):
        train(_config(course, tmp_path / "m.pt", val_ids=5), quiet=True)


def test_a_folder_in_neither_layout_names_both(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"neither training layout(?s:.*)bounding_box_train/(?s:.*)annotations_train"):
        train(_config(tmp_path, tmp_path / "m.pt"), quiet=True)
