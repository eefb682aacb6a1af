"""The bench report's rows as types: a `BenchRow` per runtime, a `DriftRow` per `--preprocess-as` variant, each
with a `Status` (ok | skipped | failed) and its reason.

    row = BenchRow(runtime="onnxruntime", model="m.onnx")
    row = row.failed("no such file")               # status FAILED, the reason kept apart
    row.to_dict()   # {"runtime": ..., "model": ..., "status": "failed: no such file"}: report.json's shape
    BenchRow.from_dict(json_row).status              # Status.FAILED: a report read back (--compare, the tables)

report.json keeps the shape it has had since its first version (`SCHEMA_VERSION`; reports written before the
field existed lack it and read the same): a row's `status` is "ok", "skipped: <reason>" or "failed: <reason>",
and a key whose value is unknown is left out. `report.schema.json` beside this module is its JSON Schema
(`schema_path()`); docs/benchmarks.md describes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "Status", "BenchRow", "DriftRow", "report_rows", "schema_path"]

SCHEMA_VERSION = 1  # report.json's shape; raise it when a reader of an older report would misread a newer one
_STATUS_FIELDS = ("status", "reason", "extra")  # written as one "status" key (and the unknown keys as they were)


class Status(str, Enum):
    """How a row ended: it ran (`ok`), could not run here (`skipped`: a runtime not installed, no GPU), or broke."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class _Row:
    """What every row has: what ran, how it ended and why; keys unknown to this version are kept in `extra`."""

    status: Status = Status.OK
    reason: str = ""  # why a row was skipped or failed, one message
    extra: dict = field(default_factory=dict)  # keys of a report this version does not know, written back as read

    def failed(self, reason: str):
        return dataclasses.replace(self, status=Status.FAILED, reason=reason)

    def skipped(self, reason: str):
        return dataclasses.replace(self, status=Status.SKIPPED, reason=reason)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def status_text(self) -> str:
        """The status as report.json writes it: "ok", or "failed: <reason>" / "skipped: <reason>"."""
        return self.status.value if self.ok else f"{self.status.value}: {self.reason}"

    def to_dict(self) -> dict:
        """The row as report.json holds it: fields in declaration order, unknown values left out."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in _STATUS_FIELDS:
                continue
            value = getattr(self, f.name)
            if value is not None and value is not False or f.name in self._always():
                out[f.name] = value
            if f.name == "model" and self._writes_status():  # runtime, model, status: the order rows have had
                out["status"] = self.status_text
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, row: dict):
        """A row of report.json (any version so far) as this type."""
        names = {f.name for f in dataclasses.fields(cls)} - set(_STATUS_FIELDS)
        kind, _, reason = str(row.get("status", "ok")).partition(": ")
        try:
            status = Status(kind)
        except ValueError:  # a status this version does not know: it did not run as it should
            status, reason = Status.FAILED, str(row["status"])
        return cls(status=status, reason=reason, extra={k: v for k, v in row.items() if k not in names | {"status"}},
                   **{k: v for k, v in row.items() if k in names})

    def _writes_status(self) -> bool:
        return True

    def _always(self) -> tuple[str, ...]:
        return ()


@dataclass
class BenchRow(_Row):
    """One runtime on one artefact: speed, accuracy and agreement with its reference row. Percent for accuracy,
    points for the deltas (this row minus the reference)."""

    runtime: str = ""  # registry name, with " (neck)" / " (pooled)" for `--embedding both`
    model: str = ""  # the artefact's path
    provider: str | None = None  # what the runtime says ran it (execution provider, device)
    precision: str | None = None  # fp32 | fp16 | int8
    opset: int | None = None  # ONNX opset, for ONNX artefacts
    max_batch: int | None = None  # the runtime's largest batch (a TensorRT profile), None: no limit
    arch: str | None = None  # the architecture the artefact records
    throughput: dict | None = None  # per batch size (str): images_per_sec, p50_ms, ... or skipped / error
    stages: dict | None = None  # the whole path at one batch size (bench.stages)
    extract_seconds: float | None = None  # query + gallery embedding time
    compile_seconds: float | None = None  # what activating the runtime spent compiling the model (torch-compile)
    rank1: float | None = None
    rank5: float | None = None
    rank10: float | None = None
    mAP: float | None = None
    mINP: float | None = None
    num_valid_queries: int | None = None
    attr_mean_accuracy: float | None = None  # official 12 columns
    attr_mA: float | None = None
    attr_images: int | None = None
    reference: str | None = None  # "runtime:file" of the row this one is compared with
    is_reference: bool = False  # this row is its own reference
    delta_rank1: float | None = None
    delta_mAP: float | None = None
    delta_mINP: float | None = None
    delta_attr_mA: float | None = None
    cosine_min: float | None = None  # agreement of its embeddings with the reference's
    cosine_mean: float | None = None
    max_abs_diff: float | None = None

    def _always(self) -> tuple[str, ...]:
        # a loaded runtime reports these even when it has none (ONNX-less, no batch limit, arch unknown)
        return ("opset", "max_batch", "arch") if self.provider is not None else ()


@dataclass
class DriftRow(_Row):
    """One runtime's accuracy with query and gallery decoded as a deployment target does (bench.drift); deltas
    (points) and cosine against the contract's own preprocessing of the same source."""

    runtime: str = ""
    model: str = ""
    precision: str | None = None
    preprocess_as: str | None = None  # the target's name, "contract" for the baseline
    source: str | None = None  # "stored", or "upscaled-<f>x"
    resize_method: str | None = None
    aspect: str | None = None
    rank1: float | None = None
    mAP: float | None = None
    mINP: float | None = None
    delta_rank1: float | None = None
    delta_mAP: float | None = None
    delta_mINP: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None

    def _writes_status(self) -> bool:
        return not self.ok  # a drift row that ran carries no status key (the shape of the first reports)


def report_rows(report: dict) -> list[BenchRow]:
    """The rows of a report dict (a run's, or report.json read back) as `BenchRow`s."""
    return [BenchRow.from_dict(row) for row in report["rows"]]


def schema_path() -> Path:
    """report.json's JSON Schema, installed with the package."""
    return Path(str(resources.files(__package__).joinpath("report.schema.json")))
