"""`serve --from-report`: the fastest row of a bench report that stays within the accuracy drops, as a model spec.

    pick = pick_from_report("runs/bench/report.json", max_map_drop=0.5)
    print(pick.line())     # serving openvino int8 runs/m.int8.xml: 612.0 img/s @32, ΔmAP -0.35 within 0.5; ...
    ServeSettings(model=pick.model, ...)                 # "openvino=/abs/runs/m.int8.xml"

Rows are the report's `ok` rows whose ΔmAP (and ΔRank-1, when a limit is given) against the report's reference
row stay within the drops; among them the fastest by model-only img/s at the report's largest batch size
(`bench.run`'s median over timed calls) is served, on the runtime it was measured with. A relative artefact path
is read against the report's folder, else the current folder (where `reid-export bench` ran). A row whose
runtime the service cannot put behind a gallery (a `--embedding both` variant, a factory row, an artefact kind
`artefacts.inspect` does not identify) is passed over, and the start-up line says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..artefacts.info import KINDS
from ..bench.rows import BenchRow, report_rows, schema_path
from ..errors import ReidExportError
from ..runtimes.registry import RUNTIMES, capabilities

__all__ = ["ReportPick", "pick_from_report", "DEFAULT_MAX_MAP_DROP"]

DEFAULT_MAX_MAP_DROP = 0.5  # points of mAP a served row may lose against the reference when no limit is given
# the command that writes each artefact kind, for the message of a missing file
_MAKERS = {".onnx": "reid-export onnx", ".xml": "reid-export openvino", ".pt2": "reid-export aot",
           ".engine": "reid-export trt", ".plan": "reid-export trt", ".pt": "reid-export train",
           ".pth": "reid-export train", ".pte": "reid-export executorch", ".tflite": "reid-export litert"}
_LABELS = {"mAP": "ΔmAP", "rank1": "ΔRank-1"}
_IDENTIFIED = tuple(s for suffixes in KINDS.values() for s in suffixes)  # a gallery is tied to these (sha256)


@dataclass(frozen=True)
class ReportPick:
    """The row chosen from a report and why."""

    model: str  # RUNTIME=PATH for ServeSettings.model (the path resolved)
    row: BenchRow
    path: Path | str  # the artefact as resolved (an address for a server runtime)
    batch: int  # the batch size whose img/s ranked the rows: the report's largest
    images_per_sec: float
    limits: dict  # {"mAP": points or None, "rank1": points or None}
    default_limit: bool  # the mAP limit is DEFAULT_MAX_MAP_DROP, not given
    ok_rows: int
    over: tuple[str, ...]  # ok rows outside the drops, with their deltas
    passed_over: tuple[str, ...]  # faster rows within the drops that cannot be served, with why

    def line(self) -> str:
        """The start-up line: which row serves and why."""
        row = self.row
        within = [f"{_LABELS[k]} {_signed(getattr(row, f'delta_{k}'))} within {limit}"
                  + (" (default --max-map-drop)" if k == "mAP" and self.default_limit else "")
                  for k, limit in self.limits.items() if limit is not None]
        text = (f"serving {row.runtime} {row.precision or '?'} {self.path}: {self.images_per_sec:.1f} img/s "
                f"@{self.batch} (the fastest model-only img/s at the report's largest batch), "
                + ("the reference row itself" if row.is_reference else ", ".join(within))
                + f"; {self.ok_rows} ok rows, {len(self.over)} over the drop")
        if self.over:
            text += ": " + "; ".join(self.over)
        if self.passed_over:
            text += "; faster but not servable: " + "; ".join(self.passed_over)
        return text


def pick_from_report(report_path: str | Path, *, max_map_drop: float | None = None,
                     max_rank1_drop: float | None = None) -> ReportPick:
    """The fastest servable `ok` row of the report within the drops (points below its reference row)."""
    report_path = Path(report_path)
    report = _read(report_path)
    rows = report_rows(report)
    limits = {"mAP": DEFAULT_MAX_MAP_DROP if max_map_drop is None and max_rank1_drop is None else max_map_drop,
              "rank1": max_rank1_drop}
    ok = [row for row in rows if row.ok]
    if not ok:
        raise ReidExportError(f"--from-report {report_path}: no row ran (" + "; ".join(
            f"{_name(r)}: {r.status_text}" for r in rows) + "); run `reid-export bench` again where its runtimes work")
    if not any(row.is_reference for row in ok):
        raise ReidExportError(f"--from-report {report_path}: no reference row (is_reference), so no row's accuracy "
                              "drop can be checked; bench the checkpoint (--model MODEL.pt) with the exports")
    batch = max(report["settings"]["batch_sizes"])
    within, over = [], []  # the reference row is always within: its deltas are its own
    for row in ok:
        excess = _over(row, limits)
        if excess:
            over.append(f"{_name(row)} ({excess})")
        else:
            within.append(row)
    speed = {id(row): _images_per_sec(row, batch) for row in within}
    ranked = sorted((row for row in within if speed[id(row)] is not None), key=lambda r: -speed[id(r)])
    if not ranked:
        raise ReidExportError(f"--from-report {report_path}: no row within the drop was measured at batch {batch} "
                              "(the report's largest); re-run the bench with that batch size in --batch-sizes")
    passed = []
    for row in ranked:
        why = _not_servable(row)
        if why is None:
            spec, path = _resolve(row, report_path)
            return ReportPick(model=spec, row=row, path=path, batch=batch, images_per_sec=speed[id(row)],
                              limits=limits, default_limit=max_map_drop is None and max_rank1_drop is None,
                              ok_rows=len(ok), over=tuple(over), passed_over=tuple(passed))
        passed.append(f"{_name(row)} ({why})")
    raise ReidExportError(f"--from-report {report_path}: no row within {_limits_text(limits)} can be served: "
                          + "; ".join(passed) + (f"; over the drop: {'; '.join(over)}" if over else "")
                          + ". Allow a larger drop (--max-map-drop / --max-rank1-drop), export the model to ONNX or "
                          "OpenVINO and bench that, or serve --model PATH")


def _read(path: Path) -> dict:
    """report.json, checked against its JSON Schema (when jsonschema is installed) and for what picking needs."""
    fix = "give the report.json that `reid-export bench -o DIR` wrote"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReidExportError(f"--from-report {path}: no such file; {fix}") from None
    except (OSError, ValueError) as e:
        raise ReidExportError(f"--from-report {path}: not a readable JSON file ({e}); {fix}") from None
    problem = _schema_problem(report)
    if problem is None and not (isinstance(report, dict) and isinstance(report.get("rows"), list)
                                and all(isinstance(r, dict) for r in report["rows"])
                                and isinstance(report.get("settings", {}).get("batch_sizes"), list)
                                and report["settings"]["batch_sizes"]):
        problem = "it needs a list of rows and settings.batch_sizes"
    if problem is not None:
        raise ReidExportError(f"--from-report {path}: not a bench report as {schema_path().name} describes it "
                              f"({problem}); {fix}")
    return report


def _schema_problem(report) -> str | None:
    """The first place where `report` breaks report.schema.json, or None (also when jsonschema is missing)."""
    try:
        import jsonschema  # lazy: an optional dev dependency; without it only the fields picking reads are checked
    except ImportError:
        return None
    validator = jsonschema.Draft202012Validator(json.loads(schema_path().read_text()))
    error = next(iter(sorted(validator.iter_errors(report), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:300]}"


def _over(row: BenchRow, limits: dict) -> str:
    """Why the row is outside the drops ('' when within)."""
    if row.is_reference:
        return ""
    problems = []
    for key, limit in limits.items():
        if limit is None:
            continue
        delta = getattr(row, f"delta_{key}")
        if delta is None:
            problems.append(f"no {_LABELS[key]}: its {key} or its reference's was not measured")
        elif -delta > limit:
            problems.append(f"{_LABELS[key]} {_signed(delta)}, over {limit}")
    return ", ".join(problems)


def _images_per_sec(row: BenchRow, batch: int) -> float | None:
    timing = (row.throughput or {}).get(str(batch)) or {}
    return timing.get("images_per_sec")


def _not_servable(row: BenchRow) -> str | None:
    if row.runtime not in RUNTIMES:
        return (f"runtime {row.runtime!r} is no registered runtime (a `--embedding both` or factory row); "
                "serve runs the registry's runtimes")
    if capabilities(row.runtime).needs_server:
        return None
    if not row.model.lower().endswith(_IDENTIFIED):
        return (f"a gallery is tied to its model's sha256, which the service reads from {', '.join(_IDENTIFIED)} "
                f"files, not {Path(row.model).suffix or row.model}")
    return None


def _resolve(row: BenchRow, report_path: Path) -> tuple[str, Path | str]:
    """RUNTIME=PATH with the artefact found: relative paths against the report's folder, else the current one."""
    if capabilities(row.runtime).needs_server:
        return f"{row.runtime}={row.model}", row.model
    given = Path(row.model)
    tried = [given] if given.is_absolute() else [report_path.parent / given, Path.cwd() / given]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        maker = _MAKERS.get(given.suffix.lower(), "reid-export onnx")
        raise ReidExportError(f"--from-report {report_path}: the chosen row {_name(row)} names {row.model}, which is "
                              f"not there (looked at {', '.join(str(p) for p in dict.fromkeys(tried))}); it was "
                              f"written by `{maker}` before the bench ran: write it again there, or run the bench "
                              "from the folder that holds it")
    return f"{row.runtime}={found.resolve()}", found


def _name(row: BenchRow) -> str:
    return f"{row.runtime} {row.precision or '?'} {Path(row.model).name}"


def _limits_text(limits: dict) -> str:
    return " and ".join(f"a {_LABELS[k]} drop of {v}" for k, v in limits.items() if v is not None)


def _signed(value: float | None) -> str:
    return "?" if value is None else f"{value:+.2f}"
