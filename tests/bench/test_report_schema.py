"""report.json has a type: rows with a status enum and a reason, a schema version, and a JSON Schema that the
reports `reid-export bench` writes, and the committed ones, validate against."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from reid_export.bench.report import compare_reports, short_rows, table_rows
from reid_export.bench.rows import SCHEMA_VERSION, BenchRow, DriftRow, Status, schema_path
from reid_export.bench.run import check_gates, row_outcomes

jsonschema = pytest.importorskip("jsonschema", reason="the dev extra installs jsonschema, which validates reports")

REPO = Path(__file__).resolve().parents[2]
COMMITTED = sorted((REPO / "benchmarks" / "results").glob("**/report.json"))


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def cli_report(tiny_market, tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """A report written by `reid-export bench`: two ok rows, a failed one, torch-cuda (skipped without a GPU) and
    the --preprocess-as drift rows."""
    folder = tmp_path_factory.mktemp("schema")
    broken = folder / "broken.onnx"
    broken.write_bytes(b"\x00" * 64)
    out = folder / "report"
    run = subprocess.run([sys.executable, "-m", "reid_export.cli", "bench", "--data", str(tiny_market),
                          "--model", str(tiny_checkpoint), "--model", str(tiny_onnx), "--model", str(broken),
                          "--model", f"torch-cuda={tiny_checkpoint}", "--batch-sizes", "1,2", "--preprocess-as", "pil",
                          "--out", str(out), "-q"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and "row failed: onnxruntime" in run.stderr, run.stderr  # the broken file's row
    return json.loads((out / "report.json").read_text())


def test_a_report_written_by_bench_validates_against_the_schema(cli_report, validator):
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(cli_report)]
    assert not errors, "\n".join(errors)
    assert cli_report["schema_version"] == SCHEMA_VERSION
    statuses = [row["status"] for row in cli_report["rows"]]
    assert statuses[:2] == ["ok", "ok"] and statuses[2].startswith("failed: ") and "broken.onnx" in statuses[2]
    assert statuses[3] == "ok" or statuses[3].startswith("skipped: ")  # torch-cuda: skipped without a GPU
    assert cli_report["drift"] and all("status" not in row for row in cli_report["drift"])


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.parent.relative_to(REPO / "benchmarks" / "results")))
def test_a_committed_report_validates_and_still_reads(path, validator):
    report = json.loads(path.read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(report)]
    assert not errors, "\n".join(errors)
    rows = [BenchRow.from_dict(row) for row in report["rows"]]
    assert all(not row.extra for row in rows)  # every key of every row is a field of the type
    for typed, row in zip(rows, report["rows"]):  # the same row back (null and absent read the same)
        assert _set(typed.to_dict()) == _set(row)
    changes = compare_reports(report, report)  # what --compare does against a committed report
    assert len(changes) == sum(row.ok for row in rows) and all(c["mAP_change"] == 0 for c in changes)
    assert len(table_rows(report)[1]) == len(short_rows(report)[1]) == len(rows)


def test_the_committed_reports_are_found():
    assert len(COMMITTED) >= 3, "benchmarks/results/**/report.json: the committed reports the schema must read"


def test_reports_breaking_the_schema_are_caught(validator):
    report = json.loads(COMMITTED[0].read_text())
    for broken in (_edit(report, "status", "crashed"), _edit(report, "rank1", 140.0),
                   _edit(report, "throughput", {"one": {"images_per_sec": 3.0}}), _edit(report, "runtime", None),
                   _edit(report, "typo_column", 1.0), {k: v for k, v in report.items() if k != "rows"}):
        assert not validator.is_valid(broken)


def test_the_schema_describes_exactly_the_fields_of_the_row_types():
    schema = json.loads(schema_path().read_text())
    for name, cls in (("row", BenchRow), ("driftRow", DriftRow)):
        fields = {f.name for f in dataclasses.fields(cls)} - {"reason", "extra"}
        assert set(schema["$defs"][name]["properties"]) == fields, name


def test_the_schema_ships_as_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "report.schema.json" in config["tool"]["setuptools"]["package-data"]["reid_export.bench"]
    assert schema_path().is_file() and schema_path().parent == Path(sys.modules[BenchRow.__module__].__file__).parent


def test_a_row_keeps_its_reason_apart_and_writes_the_status_text_of_every_report():
    row = BenchRow(runtime="tensorrt", model="e/m.engine", provider="TensorRT").failed("engine built for: sm_90")
    assert row.status is Status.FAILED and row.reason == "engine built for: sm_90"
    written = row.to_dict()
    assert written["status"] == "failed: engine built for: sm_90"
    assert list(written)[:3] == ["runtime", "model", "status"]
    assert {"opset", "max_batch", "arch"} <= set(written) and "rank1" not in written  # a loaded runtime's fields
    assert BenchRow.from_dict(written) == row
    skipped = BenchRow.from_dict({"runtime": "torch-cuda", "model": "m.pt", "status": "skipped: no CUDA device"})
    assert skipped.status is Status.SKIPPED and skipped.reason == "no CUDA device" and not skipped.ok
    odd = BenchRow.from_dict({"runtime": "x", "model": "m", "status": "exploded"})  # a status no version wrote
    assert odd.status is Status.FAILED and odd.reason == "exploded"


def test_outcomes_and_gates_read_the_status_enum():
    report = {"rows": [
        BenchRow(runtime="torch", model="m.pt", mAP=60.0, is_reference=True, reference="torch:m.pt").to_dict(),
        BenchRow(runtime="onnxruntime", model="m.int8.onnx", precision="int8", mAP=55.0, delta_mAP=-5.0,
                 reference="torch:m.pt").to_dict(),
        BenchRow(runtime="tensorrt", model="m.engine").skipped("TensorRT is not installed").to_dict(),
        BenchRow(runtime="openvino", model="m.xml").failed("ok: not really").to_dict(),
    ]}
    outcomes = row_outcomes(report)
    assert [len(outcomes[s.value]) for s in Status] == [2, 1, 1]
    assert outcomes["failed"][0]["status"] == "failed: ok: not really"
    assert check_gates(report, max_map_drop=1.0) == [
        "onnxruntime (int8, m.int8.onnx): mAP dropped 5.00 points vs torch:m.pt (allowed 1.0)"]


def _edit(report: dict, key: str, value) -> dict:
    changed = copy.deepcopy(report)
    changed["rows"][0][key] = value
    return changed


def _set(row: dict) -> dict:
    return {key: value for key, value in row.items() if value is not None}
