"""The official attribute file, the target encoding and the synthetic set's attribute file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from reid_export.data import attributes as attrs
from reid_export.data.attributes import (
    AGE_INDEX,
    ATTRIBUTE_CODES,
    ATTRIBUTE_FILE,
    ATTRIBUTE_NAMES,
    ATTRIBUTE_TARGETS,
    BINARY_ATTRIBUTES,
    BINARY_SLICE,
    LOWER_COLOURS,
    LOWER_SLICE,
    NUM_AGE_CLASSES,
    NUM_BINARY,
    NUM_TARGETS,
    UPPER_COLOURS,
    UPPER_SLICE,
    codes_to_array,
    decode_predictions,
    encode_targets,
    load_market_attributes,
    save_market_attributes,
)
from reid_export.errors import DataError


def _random_codes(rng: np.random.Generator, one_hot: bool = True) -> dict[str, int]:
    codes = {name: int(rng.choice(list(ATTRIBUTE_CODES[name]))) for name in ATTRIBUTE_NAMES}
    if one_hot:
        for colours in (UPPER_COLOURS, LOWER_COLOURS):
            marked = colours[int(rng.integers(len(colours)))]
            codes.update({name: 2 if name == marked else 1 for name in colours})
    return codes


def _split(rng, pids, one_hot=True):
    return {pid: _random_codes(rng, one_hot) for pid in pids}


def _raw_fields(labels: dict[int, dict[str, int]], order) -> dict:
    """A split struct as the official file stores it, fields in `order` (names or image_index)."""
    pids = sorted(labels)
    columns = {name: np.array([labels[p][name] for p in pids], dtype=np.float64) for name in ATTRIBUTE_NAMES}
    columns["image_index"] = np.array([f"{p:04d}" for p in pids], dtype=object)
    return {name: columns[name] for name in order}


def _write_raw(path, train: dict, test: dict, variable: str = "market_attribute"):
    scipy.io.savemat(str(path), {variable: {"train": train, "test": test}})
    return path


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    return {"train": _split(rng, [2, 7, 10, 1500]), "test": _split(rng, [0, 1, 3], one_hot=False)}


# -- the official file -------------------------------------------------------------------------


def test_round_trip_keeps_every_label(tmp_path, labels):
    path = save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    assert load_market_attributes(path) == labels
    assert load_market_attributes(tmp_path) == labels  # the folder holding the file works too
    assert [p.name for p in tmp_path.iterdir()] == [ATTRIBUTE_FILE]  # no partial file left behind


def test_saved_file_stores_train_and_test_fields_in_different_orders(tmp_path, labels):
    path = save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    raw = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)["market_attribute"]
    assert raw._fieldnames == ["train", "test"]
    assert raw.train._fieldnames == list(ATTRIBUTE_NAMES) + ["image_index"]
    assert raw.test._fieldnames == ["image_index"] + list(ATTRIBUTE_NAMES[::-1])
    assert list(raw.train.image_index) == ["0002", "0007", "0010", "1500"]
    assert raw.train.gender.dtype == np.uint8


def test_fields_are_read_by_name_not_by_position(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _split(rng, [5, 6, 8]), _split(rng, [9, 11])
    shuffled = list(ATTRIBUTE_NAMES) + ["image_index"]
    rng.shuffle(shuffled)
    path = _write_raw(tmp_path / "a.mat", _raw_fields(train, ATTRIBUTE_NAMES + ("image_index",)),
                      _raw_fields(test, shuffled))
    loaded = load_market_attributes(path)
    assert loaded == {"train": train, "test": test}
    # a value that only matches when read by name: age sits elsewhere in the test struct
    assert shuffled.index("age") != ATTRIBUTE_NAMES.index("age")
    assert [loaded["test"][p]["age"] for p in (9, 11)] == [test[9]["age"], test[11]["age"]]


def test_a_split_with_one_id_survives_squeezing(tmp_path):
    rng = np.random.default_rng(2)
    labels = {"train": _split(rng, [4]), "test": _split(rng, [8])}
    save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    assert load_market_attributes(tmp_path / ATTRIBUTE_FILE) == labels


def test_unsqueezed_record_structs_read_the_same(tmp_path, labels):
    """loadmat's default shape (1 x 1 records, cells of char arrays) gives the same labels."""
    path = save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    raw = scipy.io.loadmat(str(path))["market_attribute"]
    for split in ("train", "test"):
        assert attrs._read_split(path, split, raw[split]) == labels[split]


def test_colours_with_none_or_several_marked_are_accepted(tmp_path, labels):
    labels["train"][2].update({name: 1 for name in UPPER_COLOURS})  # none marked
    labels["train"][7].update({"upblack": 2, "upwhite": 2})  # two marked
    save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    assert load_market_attributes(tmp_path / ATTRIBUTE_FILE) == labels


def test_save_refuses_to_overwrite_unless_asked(tmp_path, labels):
    path = save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    with pytest.raises(DataError, match="Refusing to overwrite .*overwrite=True"):
        save_market_attributes(path, labels)
    labels["train"][2]["age"] = 4
    save_market_attributes(path, labels, overwrite=True)
    assert load_market_attributes(path)["train"][2]["age"] == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda l: l.pop("test"), "exactly the splits 'train' and 'test'"),
        (lambda l: l["train"].update({10000: l["train"][2]}), "0..9999"),
        (lambda l: l["train"][2].update(age=5), r"train pid 0002: attribute 'age' has code 5; expected one of 1 \(young\)"),
        (lambda l: l["test"][1].pop("hat"), r"test pid 0001: .*missing \['hat'\]"),
    ],
)
def test_save_rejects_bad_labels(tmp_path, labels, change, message):
    change(labels)
    with pytest.raises(DataError, match=message):
        save_market_attributes(tmp_path / ATTRIBUTE_FILE, labels)
    assert not (tmp_path / ATTRIBUTE_FILE).exists()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.mat not found.*market_attribute\.mat"):
        load_market_attributes(tmp_path / "nope.mat")
    with pytest.raises(DataError, match="a folder without market_attribute.mat"):
        load_market_attributes(tmp_path)


def test_a_file_that_is_not_a_mat_is_refused(tmp_path):
    path = tmp_path / ATTRIBUTE_FILE
    path.write_text("id,gender\n0002,1\n")
    with pytest.raises(DataError, match=r"Cannot read .*market_attribute\.mat as a MATLAB \.mat file"):
        load_market_attributes(path)


def test_missing_variable_lists_the_variables_found(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(str(path), {"gallery_attribute": np.ones(3)})
    with pytest.raises(DataError, match=r"no variable 'market_attribute'.*\['gallery_attribute'\]"):
        load_market_attributes(path)


def test_variable_that_is_not_a_struct_is_refused(tmp_path):
    path = tmp_path / "flat.mat"
    scipy.io.savemat(str(path), {"market_attribute": np.ones(3)})
    with pytest.raises(DataError, match="is not a struct"):
        load_market_attributes(path)


def test_missing_split_is_named(tmp_path, labels):
    path = tmp_path / "a.mat"
    scipy.io.savemat(str(path), {"market_attribute": {"train": _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",))}})
    with pytest.raises(DataError, match=r"no field test.*found \['train'\]"):
        load_market_attributes(path)


def test_missing_attribute_field_is_named_with_the_fields_present(tmp_path, labels):
    order = [n for n in ATTRIBUTE_NAMES if n != "backpack"] + ["image_index"]
    path = _write_raw(tmp_path / "a.mat", _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",)),
                      _raw_fields(labels["test"], order))
    with pytest.raises(DataError, match=r"market_attribute\.test in .* lacks field\(s\) backpack; .*found gender, hair") as info:
        load_market_attributes(path)
    assert "a.mat" in str(info.value)


def test_code_out_of_range_names_field_pid_value_and_allowed_codes(tmp_path, labels):
    train = _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",))
    train["hat"] = train["hat"].copy()
    train["hat"][1] = 3  # pid 0007
    path = _write_raw(tmp_path / "a.mat", train, _raw_fields(labels["test"], ATTRIBUTE_NAMES + ("image_index",)))
    with pytest.raises(DataError, match=r"field 'hat' has code 3(\.0)? for pid 0007.*expected one of 1 \(no\), 2 \(yes\)"):
        load_market_attributes(path)


def test_fractional_code_is_out_of_range(tmp_path, labels):
    train = _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",))
    train["age"] = train["age"] + 0.5
    path = _write_raw(tmp_path / "a.mat", train, _raw_fields(labels["test"], ATTRIBUTE_NAMES + ("image_index",)))
    with pytest.raises(DataError, match="field 'age' has code .*5 for pid 0002"):
        load_market_attributes(path)


def test_length_mismatch_between_a_field_and_image_index(tmp_path, labels):
    test = _raw_fields(labels["test"], ATTRIBUTE_NAMES + ("image_index",))
    test["gender"] = test["gender"][:-1]
    path = _write_raw(tmp_path / "a.mat", _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",)), test)
    with pytest.raises(DataError, match=r"market_attribute\.test.*field 'gender' has 2 labels but image_index has 3 ids"):
        load_market_attributes(path)


def test_bad_or_repeated_image_index_is_refused(tmp_path, labels):
    train = _raw_fields(labels["train"], ATTRIBUTE_NAMES + ("image_index",))
    test = _raw_fields(labels["test"], ATTRIBUTE_NAMES + ("image_index",))
    train["image_index"] = np.array(["0002", "0007", "0007", "1500"], dtype=object)
    with pytest.raises(DataError, match=r"lists pid\(s\) \[7\] more than once"):
        load_market_attributes(_write_raw(tmp_path / "a.mat", train, test))
    train["image_index"] = np.array(["0002", "0007", "x10", "1500"], dtype=object)
    with pytest.raises(DataError, match="image_index entry 2 is 'x10'"):
        load_market_attributes(_write_raw(tmp_path / "b.mat", train, test))


# -- model targets ---------------------------------------------------------------------------


def test_target_layout_constants_describe_the_vector():
    assert NUM_TARGETS == len(ATTRIBUTE_TARGETS) == 27 and set(ATTRIBUTE_TARGETS) == set(ATTRIBUTE_NAMES)
    assert (NUM_BINARY, NUM_AGE_CLASSES) == (9, 4)
    assert ATTRIBUTE_TARGETS[AGE_INDEX] == "age"
    assert ATTRIBUTE_TARGETS[BINARY_SLICE] == BINARY_ATTRIBUTES
    assert ATTRIBUTE_TARGETS[UPPER_SLICE] == UPPER_COLOURS
    assert ATTRIBUTE_TARGETS[LOWER_SLICE] == LOWER_COLOURS


def test_encode_targets_maps_codes_to_class_indices_and_flags():
    codes = _random_codes(np.random.default_rng(3))
    codes.update(age=3, gender=2, hat=1, upblue=2)
    target = encode_targets(codes)
    assert target.dtype == np.int64 and target.shape == (27,)
    assert target[AGE_INDEX] == 2  # adult
    assert target[BINARY_SLICE][BINARY_ATTRIBUTES.index("gender")] == 1
    assert target[BINARY_SLICE][BINARY_ATTRIBUTES.index("hat")] == 0
    assert target[UPPER_SLICE][UPPER_COLOURS.index("upblue")] == 1
    assert set(target[1:].tolist()) <= {0, 1}


def _outputs_for(target: np.ndarray, rng: np.random.Generator):
    """Head outputs that decode to `target`: a peaked softmax and probabilities on the right side."""
    age = rng.normal(0, 1, NUM_AGE_CLASSES)
    age[target[AGE_INDEX]] = 10.0
    probs = np.where(target[1:] == 1, rng.uniform(0.6, 1.0, 26), rng.uniform(0.0, 0.4, 26))
    return age, probs[:9], probs[9:17], probs[17:]


def test_encode_then_decode_gives_the_codes_back_for_one_sample_and_a_batch():
    rng = np.random.default_rng(4)
    samples = [_random_codes(rng) for _ in range(20)]
    outputs = [_outputs_for(encode_targets(s), rng) for s in samples]
    for sample, out in zip(samples, outputs):
        decoded = decode_predictions(*out)
        assert decoded == sample and list(decoded) == list(ATTRIBUTE_NAMES)
    batch = [np.stack([o[i] for o in outputs]) for i in range(4)]
    assert decode_predictions(*batch) == samples


def test_thresholded_colours_round_trip_none_or_several_marked():
    rng = np.random.default_rng(5)
    sample = _random_codes(rng)
    sample.update({name: 1 for name in UPPER_COLOURS})
    sample.update({"downblack": 2, "downblue": 2})
    out = _outputs_for(encode_targets(sample), rng)
    assert decode_predictions(*out, one_hot_colours=False) == sample
    one_hot = decode_predictions(*out)
    assert sum(one_hot[c] == 2 for c in UPPER_COLOURS) == 1
    assert sum(one_hot[c] == 2 for c in LOWER_COLOURS) == 1


def test_one_hot_colours_mark_the_argmax_only():
    upper = np.full(8, 0.1)
    upper[UPPER_COLOURS.index("upred")] = 0.3  # below the threshold, still the argmax
    lower = np.linspace(0.9, 0.1, 9)  # several above the threshold: only the first wins
    codes = decode_predictions(np.array([0.0, 0, 0, 1]), np.full(9, 0.5), upper, lower)
    assert [c for c in UPPER_COLOURS if codes[c] == 2] == ["upred"]
    assert [c for c in LOWER_COLOURS if codes[c] == 2] == ["downblack"]
    assert codes["age"] == 4 and all(codes[b] == 2 for b in BINARY_ATTRIBUTES)  # 0.5 counts as yes


@pytest.mark.parametrize(
    "shapes",
    [((3,), (9,), (8,), (9,)), ((2, 4), (3, 9), (3, 8), (3, 9)), ((4,), (9,), (9,), (8,)), ((1, 2, 4), (9,), (8,), (9,))],
)
def test_decode_rejects_mismatched_shapes(shapes):
    with pytest.raises(DataError, match=r"decode_predictions: expected age_logits \(N, 4\)"):
        decode_predictions(*(np.zeros(s) for s in shapes))


def test_encode_and_codes_to_array_reject_bad_codes():
    codes = _random_codes(np.random.default_rng(6))
    with pytest.raises(DataError, match=r"missing \['age'\]"):
        encode_targets({k: v for k, v in codes.items() if k != "age"})
    with pytest.raises(DataError, match=r"unknown \['colour'\]"):
        encode_targets({**codes, "colour": 1})
    with pytest.raises(DataError, match=r"sample 1: attribute 'gender' has code 0"):
        codes_to_array([codes, {**codes, "gender": 0}])
    array = codes_to_array([codes, codes])
    assert array.shape == (2, 27) and array[1, ATTRIBUTE_NAMES.index("age")] == codes["age"]
    assert codes_to_array([]).shape == (0, 27)


# -- the synthetic set ---------------------------------------------------------------------


def test_synthetic_set_writes_its_attributes_in_the_official_layout(tmp_path):
    from reid_export.data.synthetic import generate_market1501

    summary = generate_market1501(tmp_path / "synth", train_ids=4, test_ids=3, distractors=2, junk=1,
                                  train_images=(2, 2), gallery_images=(2, 2), cameras_per_id=(2, 2), progress=False)
    loaded = load_market_attributes(summary.out_dir / ATTRIBUTE_FILE)
    assert loaded["train"] == {pid: summary.attributes[pid] for pid in (1, 2, 3, 4)}
    assert loaded["test"] == {pid: summary.attributes[pid] for pid in (5, 6, 7)}

    (tmp_path / "again").mkdir()
    (tmp_path / "again" / ATTRIBUTE_FILE).write_bytes(b"")
    with pytest.raises(DataError, match="market_attribute.mat already exists"):
        generate_market1501(tmp_path / "again", train_ids=1, test_ids=1, progress=False)


def test_saved_mat_files_are_byte_identical_for_identical_data(tmp_path):
    import time

    from reid_export.data.attributes import ATTRIBUTE_NAMES, load_market_attributes, save_market_attributes

    codes = {name: 1 for name in ATTRIBUTE_NAMES} | {"age": 2, "upred": 2, "downblue": 2}
    data = {"train": {1: codes, 2: codes}, "test": {3: codes}}
    first = save_market_attributes(tmp_path / "a.mat", data)
    time.sleep(1.1)  # the stock MAT header carries the time of day in seconds
    second = save_market_attributes(tmp_path / "b.mat", data)
    assert first.read_bytes() == second.read_bytes()
    assert load_market_attributes(second)["test"][3]["upred"] == 2
