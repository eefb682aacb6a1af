"""Every numeric option is checked where it enters: one line naming the option, what it got and what it
takes, exit 2; the checkers and parsers never fail any other way (Hypothesis)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reid_export import cli
from reid_export.errors import ReidExportError
from reid_export.options import MAX_WHOLE, number, parse_ints, parse_sets, whole

# Required arguments of each command, so that parsing reaches the option under test (none of them is read:
# a refused option stops the command before any work).
_REQUIRED = {
    "synth": ["out"],
    "train": ["--data", "d", "--out", "x.pt"],
    "onnx": ["x.pt"],
    "trt": ["x.onnx"],
    "openvino": ["x.onnx"],
    "triton": ["x.onnx", "-o", "repo"],
    "deepstream": ["x.pt", "-o", "ds"],
    "bench": ["--data", "d", "--model", "x.onnx"],
    "visualize": ["--data", "d", "--model", "x.onnx"],
    "predict": ["--data", "d", "--model", "x.onnx"],
    "index build": ["--data", "d", "--model", "x.onnx", "-o", "g"],
    "index add": ["g", "img.jpg", "--model", "x.onnx"],
    "serve": ["--model", "x.onnx", "--gallery", "g"],
    "demo": [],
}

# The examples first, then every other numeric option of every command.
BAD_VALUES = [
    ("serve", "--max-upload-mb", "nan"), ("serve", "--max-upload-mb", "inf"), ("serve", "--max-upload-mb", "-1"),
    ("index build", "--batch-size", "0"), ("index add", "--batch-size", "-1"), ("serve", "--port", "70000"),
    ("serve", "--max-delay-ms", "nan"), ("bench", "--max-map-drop", "-1"), ("bench", "--max-rank1-drop", "nan"),
    ("deepstream", "--workspace-mb", "-5"),
    ("synth", "--train-ids", "0"), ("synth", "--test-ids", "-3"), ("synth", "--seed", "-1"),
    ("train", "--epochs", "0"), ("train", "--batch-size", "0"), ("train", "--lr", "nan"), ("train", "--lr", "0"),
    ("train", "--seed", "99999999999"),
    ("onnx", "--calib-images", "0"), ("onnx", "--opset", "-17"), ("onnx", "--max-map-drop", "inf"),
    ("onnx", "--int8-max-steps", "0"), ("onnx", "--int8-layers-per-step", "0"), ("onnx", "--height", "0"),
    ("onnx", "--width", "1e9"), ("onnx", "--min-cosine", "1.5"), ("onnx", "--min-cosine", "nan"),
    ("trt", "--min-batch", "0"), ("trt", "--opt-batch", "-1"), ("trt", "--max-batch", "1.5"),
    ("openvino", "--calib-images", "-2"), ("openvino", "--min-cosine", "-inf"),
    ("triton", "--max-batch", "0"), ("triton", "--instances", "0"), ("triton", "--queue-delay-us", "-1"),
    ("triton", "--preferred-batch", "16,0"),
    ("deepstream", "--batch-size", "0"),
    ("bench", "--batch-sizes", "0"), ("bench", "--batch-sizes", "1,x"), ("bench", "--preprocess-upscale", "0"),
    ("visualize", "--queries", "0"), ("visualize", "--top-k", "-1"), ("visualize", "--seed", "nan"),
    ("predict", "--top-k", "0"),
    ("index add", "--commit-every", "0"),
    ("serve", "--port", "-1"), ("serve", "--port", "http"), ("serve", "--max-batch", "0"),
    ("serve", "--instances", "-1"),
    ("demo", "--train-ids", "0"), ("demo", "--test-ids", "0"), ("demo", "--epochs", "-1"), ("demo", "--seed", "x"),
]


@pytest.mark.parametrize("command, option, value", BAD_VALUES, ids=[" ".join(c) for c in BAD_VALUES])
def test_a_bad_number_exits_2_with_one_line_naming_the_option(command, option, value, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["reid-export", *command.split(), *_REQUIRED[command], option, value])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {option} takes") and f"got {value}" in lines[0]
    assert "Traceback" not in err and "Usage" not in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_the_installed_command_refuses_a_port_out_of_range_in_one_line():
    r = subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", "--model", "x.onnx", "--gallery", "g",
                        "--port", "70000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --port takes a whole number from 0 to 65535; got 70000"


@pytest.mark.parametrize("text, expected", [("8", 8), (" 32 ", 32), ("+4", 4), (8, 8), (8.0, 8)])
def test_whole_accepts_whole_numbers_however_written(text, expected):
    assert whole(text, "--batch-size") == expected


@pytest.mark.parametrize("text, expected", [("0.5", 0.5), ("1e-3", 1e-3), (2, 2.0)])
def test_number_accepts_finite_numbers_in_range(text, expected):
    assert number(text, "--lr", above=True) == expected


_ANY = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(), st.booleans(),
                 st.none(), st.binary(), st.integers(min_value=-10**400, max_value=10**400))


@settings(max_examples=400, deadline=None)
@given(value=_ANY, low=st.integers(-10, 10), span=st.integers(0, 10**6))
def test_whole_returns_an_int_in_range_or_refuses_naming_the_option(value, low, span):
    try:
        got = whole(value, "--opt-under-test", low=low, high=low + span)
    except ReidExportError as e:
        assert str(e).startswith("--opt-under-test takes a whole number") and "\n" not in str(e)
    else:
        assert type(got) is int and low <= got <= low + span


@settings(max_examples=400, deadline=None)
@given(value=_ANY, low=st.floats(-5, 5), above=st.booleans(), high=st.one_of(st.none(), st.floats(5, 1e6)))
def test_number_returns_a_finite_float_in_range_or_refuses_naming_the_option(value, low, above, high):
    try:
        got = number(value, "--opt-under-test", low=low, high=high, above=above)
    except ReidExportError as e:
        assert str(e).startswith("--opt-under-test takes a finite number") and "\n" not in str(e)
    else:
        assert math.isfinite(got) and (got > low if above else got >= low) and (high is None or got <= high)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet="0123456789,- x"), st.lists(st.integers(), max_size=5).map(
    lambda v: ",".join(map(str, v)))))
def test_parse_ints_gives_batch_sizes_or_refuses_naming_the_option(text):
    try:
        got = parse_ints(text, "--batch-sizes")
    except ReidExportError as e:
        assert str(e).startswith("--batch-sizes takes") and "\n" not in str(e)
    else:
        assert got and all(type(v) is int and 1 <= v <= MAX_WHOLE for v in got)


@settings(max_examples=400, deadline=None)
@given(items=st.lists(st.one_of(st.text(), st.builds(lambda k, v: f"{k}={v}", st.text(min_size=1), st.text()),
                                st.sampled_from(["lr=nan", "lr=inf", "x=[1, nan]", "epochs=3", "arch=resnet50"])),
                      max_size=4))
def test_parse_sets_gives_finite_recipe_values_or_refuses_naming_set(items):
    try:
        got = parse_sets(items)
    except ReidExportError as e:
        assert str(e).startswith("--set ")
    else:
        assert all(key.strip() == key and key for key in got)
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in got.values())


def test_parse_sets_refuses_a_value_no_gate_could_use():
    with pytest.raises(ReidExportError, match=r"--set lr takes a finite number .*got nan"):
        parse_sets(["lr=nan"])
