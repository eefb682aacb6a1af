"""Reports: the machine a run was on, and the bench table as terminal output, JSON and Markdown
(plots in `plots`); `compare_reports` puts a run next to an earlier one.

Rows are shown grouped by architecture (`arch`, first seen first; the run's order within a group). The
console prints by default the short table a person reads in a 120-column terminal (`short_rows`: img/s at
the largest batch, p50 latency at the smallest, Rank-1, mAP, their deltas, cos min, status); `wide=True`
prints every column (`table_rows`), as report.md and report.json keep them. With more than one
architecture, report.md and the wide console output lead with a matrix: arch x runtime x precision with
img/s, Rank-1, mAP, attribute mA and the deltas against each architecture's own PyTorch FP32 row
(`bench.run`)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..files import write_text
from .plots import arch_of_row, row_label, write_plots
from .rows import BenchRow, Status
from .stages import STAGES

__all__ = ["machine_info", "table_rows", "short_rows", "matrix_rows", "grouped_rows", "print_table", "write_report",
           "compare_reports", "print_comparison", "SHORT_TABLE_COLUMNS"]

SHORT_TABLE_COLUMNS = 120  # the default console table fits a terminal this wide


def machine_info() -> dict:
    """CPU model and flags, cores, GPU, library versions; every report carries it."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and "cpu_model" not in info:
                info["cpu_model"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        info["cpu_model"] = platform.processor() or "unknown"
    info["avx512_vnni"] = "avx512_vnni" in flags
    info["amx"] = "amx_tile" in flags
    for module in ("numpy", "torch", "onnx", "onnxruntime", "tensorrt"):
        info[module] = _version(module)
    info["gpu_driver"] = _nvidia_driver()
    try:
        import torch

        info["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # torch missing or broken: the report still gets written
        info["cuda_device"] = None
    return info


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of the bench table, shared by the terminal and Markdown outputs."""
    batch_sizes = report["settings"]["batch_sizes"]
    header = ["arch", "runtime", "precision", "model", "provider", "status"]
    for bs in batch_sizes:
        header += [f"img/s @{bs}", f"p50 ms @{bs}", f"p99 ms @{bs}"]
    header += ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "ΔRank-1", "ΔmAP", "cos min", "cos mean"]
    with_attributes = any("attr_mA" in row for row in report["rows"])
    if with_attributes:
        header += ["attr acc", "attr mA", "ΔmA"]
    cells = []
    for row in grouped_rows(report):
        line = [arch_of_row(row), row["runtime"], row.get("precision", "-"), Path(row["model"]).name,
                row.get("provider", "-"), row["status"]]
        for bs in batch_sizes:
            line += [_speed(row, bs, "images_per_sec", 1), _speed(row, bs, "p50_ms", 2, blank="-"),
                     _speed(row, bs, "p99_ms", 2, blank="-")]
        line += [_fmt(row.get(k), 2) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")]
        line += [_fmt(row.get(k), 2, signed=True) for k in ("delta_rank1", "delta_mAP")]
        line += [_fmt(row.get(k), 6) for k in ("cosine_min", "cosine_mean")]
        if with_attributes:
            line += [_fmt(row.get(k), 2) for k in ("attr_mean_accuracy", "attr_mA")]
            line.append(_fmt(row.get("delta_attr_mA"), 2, signed=True))
        cells.append(line)
    return header, cells


def matrix_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The matrix that leads report.md (and the wide console output) when a run holds several architectures:
    arch x runtime x precision, img/s at the largest batch measured, Rank-1, mAP, attribute mA (when any row
    has it) and each one's delta against its reference (its arch's torch FP32)."""
    largest = max(report["settings"]["batch_sizes"])
    with_attributes = any("attr_mA" in row for row in report["rows"])
    header = ["arch", "runtime", "precision", f"img/s @{largest}", "Rank-1", "ΔRank-1", "mAP", "ΔmAP"]
    header += ["attr mA", "ΔmA"] if with_attributes else []
    header += ["reference"]
    cells = []
    for row in grouped_rows(report):
        t = row.get("throughput", {}).get(str(largest)) or {}
        status = BenchRow.from_dict(row).status
        speed = "-" if status is Status.OK else status.value
        line = [arch_of_row(row), row["runtime"], row.get("precision", "-"),
                f"{t['images_per_sec']:.1f}" if "images_per_sec" in t else speed]
        line += [_fmt(row.get("rank1"), 2), _fmt(row.get("delta_rank1"), 2, signed=True),
                 _fmt(row.get("mAP"), 2), _fmt(row.get("delta_mAP"), 2, signed=True)]
        if with_attributes:
            line += [_fmt(row.get("attr_mA"), 2), _fmt(row.get("delta_attr_mA"), 2, signed=True)]
        line.append("itself" if row.get("is_reference") else row.get("reference", "-"))
        cells.append(line)
    return header, cells


def grouped_rows(report: dict) -> list[dict]:
    """The report's rows grouped by architecture, groups in order of first appearance, rows in run order."""
    first = {}
    for row in report["rows"]:
        first.setdefault(arch_of_row(row), len(first))
    return sorted(report["rows"], key=lambda row: first[arch_of_row(row)])  # stable: run order within a group


def short_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the console's default table, which fits `SHORT_TABLE_COLUMNS`: runtime, precision,
    img/s at the largest batch, p50 latency at the smallest (batch 1 when measured), Rank-1, mAP, their deltas
    against the reference, cos min and status. An `arch` column is added when the report holds several
    architectures, and a `model` column (file name) when two rows would otherwise read the same."""
    batch_sizes = report["settings"]["batch_sizes"]
    largest, smallest = max(batch_sizes), min(batch_sizes)
    rows = grouped_rows(report)
    with_arch = _several_archs(report)
    keys = [(arch_of_row(r), r["runtime"], r.get("precision", "-")) for r in rows]
    with_model = len(set(keys)) < len(keys)
    header = [*(["arch"] if with_arch else []), "runtime", "precision", *(["model"] if with_model else []),
              f"img/s @{largest}", f"p50 ms @{smallest}", "Rank-1", "ΔRank-1", "mAP", "ΔmAP", "cos min", "status"]
    cells = []
    for row, (arch, runtime, precision) in zip(rows, keys):
        line = [*([arch] if with_arch else []), runtime, precision, *([Path(row["model"]).name] if with_model else []),
                _speed(row, largest, "images_per_sec", 1), _speed(row, smallest, "p50_ms", 2)]
        line += [_fmt(row.get("rank1"), 2), _fmt(row.get("delta_rank1"), 2, signed=True),
                 _fmt(row.get("mAP"), 2), _fmt(row.get("delta_mAP"), 2, signed=True),
                 _fmt(row.get("cosine_min"), 6), row["status"]]
        cells.append(line)
    return header, cells


def print_table(report: dict, *, title: str = "reid-export bench", wide: bool = False, console=None) -> None:
    """The bench table on the console: the short table (`short_rows`) by default, every column with `wide`.
    A failed or skipped row's status reads `failed [n]` and its reason is printed in full under the table.
    `console` is a rich Console (default: the terminal, or 120 columns when the output is not a terminal)."""
    from rich import box
    from rich.table import Table

    header, cells = table_rows(report) if wide else short_rows(report)
    several = _several_archs(report)
    against = "each arch's torch FP32 row" if several else _reference(report)
    caption = None if wide else f"deltas and cos min against {against}; every column: --wide or report.md"
    compact = {} if wide else {"box": box.SIMPLE_HEAD, "collapse_padding": True, "show_edge": False, "pad_edge": False}
    table = Table(title=title, caption=caption, **compact)  # compact: two spaces between columns, no frame
    for h in header:  # compact: "img/s @32" over two lines, as narrow as its numbers
        table.add_column(h if wide else h.replace(" @", "\n@"), justify="left" if h in _LEFT_COLUMNS else "right")
    notes = []  # a failed/skipped row's reason, in full and wrapped, under the table
    status_at = header.index("status")
    previous = None
    for row, line in zip(grouped_rows(report), cells):
        if previous is not None and arch_of_row(row) != previous:
            table.add_section()  # a rule between architectures
        previous = arch_of_row(row)
        typed = BenchRow.from_dict(row)
        if typed.reason:
            notes.append(f"[{len(notes) + 1}] {row['runtime']} {Path(row['model']).name}: {typed.status_text}")
            line = [*line[:status_at], f"{typed.status.value} [{len(notes)}]", *line[status_at + 1:]]
        table.add_row(*line)
    console = console or _console(max(160, len(header) * 11) if wide else None)  # wide: no cell wrapped
    console.print(table)
    if wide and several:
        matrix_header, matrix_cells = matrix_rows(report)
        matrix = Table(title="architecture x runtime x precision (deltas against each arch's torch FP32 row)")
        for h in matrix_header:
            matrix.add_column(h, justify="left" if h in _LEFT_COLUMNS else "right")
        for line in matrix_cells:
            matrix.add_row(*line)
        console.print(matrix)
    for note in notes:
        console.print(note, markup=False, highlight=False, soft_wrap=False)  # rich wraps at the console width


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.md into out_dir (created if needed); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_text(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    header, cells = table_rows(report)
    m = report["machine"]
    lines = [
        "# reid-export bench",
        "",
        f"Data: `{report['data']['root']}` ({report['data']['num_query']} query, {report['data']['num_gallery']} gallery images).",
        f"Machine: {m.get('cpu_model', '?')}, {m.get('cpu_count')} cores, AVX-512 VNNI: {m.get('avx512_vnni')}, "
        f"GPU: {m.get('cuda_device') or 'none'}; torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}, "
        f"tensorrt {m.get('tensorrt') or 'not installed'}.",
        "",
        "Throughput is model-only (pre-decoded, pre-normalised batches, after warm-up); accuracy and cosine "
        "come from each runtime's own embeddings of every query and gallery image; cosine and deltas are "
        f"against each row's reference, the PyTorch FP32 row of its architecture ({_reference(report)}).",
        "",
        *_matrix_table(report),
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    lines += _stage_table(report)
    stages = report.get("stages_seconds")
    if stages:
        lines += ["", "Stage wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) + "."]
    for title, path in write_plots(report, out_dir).items():
        lines += ["", f"![{title}]({path.name})"]
    write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path


def compare_reports(old: dict, new: dict) -> list[dict]:
    """Rows of `new` matched to `old` by (runtime, precision, model file name), with the change in
    images/s (percent, per common batch size) and in Rank-1 / mAP (points)."""
    def key(row):
        return row["runtime"], row.get("precision"), Path(row["model"]).name

    previous = {key(r): r for r in old["rows"] if r["status"] == "ok"}
    changes = []
    for row in new["rows"]:
        before = previous.get(key(row))
        if row["status"] != "ok" or before is None:
            continue
        change = {"row": row_label(row), "model": Path(row["model"]).name}
        for bs, t in row.get("throughput", {}).items():
            b = before.get("throughput", {}).get(bs)
            if b and "images_per_sec" in b and "images_per_sec" in t:
                change[f"images_per_sec_change_pct@{bs}"] = round(100 * (t["images_per_sec"] / b["images_per_sec"] - 1), 1)
        for metric in ("rank1", "mAP", "mINP"):
            change[f"{metric}_change"] = round(row[metric] - before[metric], 3)
        changes.append(change)
    return changes


def print_comparison(changes: list[dict], old_path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"change against {old_path}")
    keys = sorted({k for c in changes for k in c} - {"row", "model"}, key=lambda k: (not k.startswith("images"), k))
    for h in ["row", "model", *keys]:
        table.add_column(h)
    for c in changes:
        table.add_row(c["row"], c["model"], *[_fmt(c.get(k), 1 if k.startswith("images") else 2, signed=True) for k in keys])
    Console(width=160).print(table if changes else "no rows in common with the earlier report")


_LEFT_COLUMNS = ("arch", "runtime", "precision", "model", "provider", "status", "reference")


def _speed(row: dict, batch_size: int, key: str, digits: int, *, blank: str | None = None) -> str:
    """One throughput or latency cell of `row` at `batch_size`: the value; `OOM` or `skipped` (or `blank`) for a
    batch that could not run (out of memory, too big to fit, above the runtime's max_batch); `-` when not measured."""
    t = row.get("throughput", {}).get(str(batch_size))
    if not t:
        return "-"
    if "images_per_sec" not in t:
        return blank or ("OOM" if "error" in t else "skipped")
    return f"{t[key]:.{digits}f}"


def _several_archs(report: dict) -> bool:
    """More than one known architecture (a row that failed before its model loaded has none)."""
    return len({row["arch"] for row in report["rows"] if row.get("arch")}) > 1


def _console(width: int | None):
    """A rich Console `width` columns wide; without a width, the terminal as it is, or `SHORT_TABLE_COLUMNS`
    when the output is not a terminal (a log, a pipe, CI)."""
    from rich.console import Console

    if width is None:
        console = Console()
        if console.is_terminal:
            return console
        width = SHORT_TABLE_COLUMNS
    return Console(width=width)


def _stage_table(report: dict) -> list[str]:
    rows = [r for r in grouped_rows(report) if r.get("stages")]
    if not rows:
        return []
    several = len({arch_of_row(r) for r in rows}) > 1
    paths = list(rows[0]["stages"]["images_per_sec"])
    header = ["runtime", "batch", *[f"{s} ms" for s in STAGES], "bound by", *[f"img/s {p}" for p in paths]]
    lines = ["", "## Where the time goes (whole path per batch, median ms)", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        st = r["stages"]
        name = f"{arch_of_row(r)} {row_label(r)}" if several else row_label(r)
        cells = [name, str(st["batch_size"]), *[f"{st['stages_ms'][f'{s}_ms']:.2f}" for s in STAGES],
                 st["bound_by"], *[f"{st['images_per_sec'][p]:.1f}" for p in paths]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _matrix_table(report: dict) -> list[str]:
    """Markdown lines of `matrix_rows`, when the report holds more than one architecture."""
    if not _several_archs(report):
        return []
    header, cells = matrix_rows(report)
    return ["## Architecture x runtime x precision", "",
            "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(line) + " |" for line in cells), "", "## Every row", ""]


def _reference(report: dict) -> str:
    refs = {row.get("reference") for row in report["rows"] if row.get("reference")}
    return ", ".join(sorted(refs)) or "none"


def _fmt(value, digits: int, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _nvidia_driver() -> str | None:
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(module: str) -> str | None:
    from importlib import metadata

    names = {"onnxruntime": ("onnxruntime-gpu", "onnxruntime"), "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13")}
    for dist in names.get(module, (module,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None
