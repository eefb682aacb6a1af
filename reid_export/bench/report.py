"""Reports: the machine a run was on, and the bench table as terminal output, JSON and Markdown
(plots in `plots`); `compare_reports` puts a run next to an earlier one."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..files import write_text
from .plots import row_label, write_plots
from .stages import STAGES

__all__ = ["machine_info", "table_rows", "print_table", "write_report", "compare_reports", "print_comparison"]


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
    header = ["runtime", "precision", "provider", "status"]
    for bs in batch_sizes:
        header += [f"img/s @{bs}", f"p50 ms @{bs}", f"p99 ms @{bs}"]
    header += ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "ΔRank-1", "ΔmAP", "cos min", "cos mean"]
    with_attributes = any("attr_mA" in row for row in report["rows"])
    if with_attributes:
        header += ["attr acc", "attr mA"]
    cells = []
    for row in report["rows"]:
        line = [row["runtime"], row.get("precision", "-"), row.get("provider", "-"), row["status"]]
        for bs in batch_sizes:
            t = row.get("throughput", {}).get(str(bs))
            if t and "images_per_sec" not in t:  # out of memory, or skipped (too big to fit, above max_batch)
                line += ["OOM" if "error" in t else "skipped", "-", "-"]
            else:
                line += [f"{t['images_per_sec']:.1f}", f"{t['p50_ms']:.2f}", f"{t['p99_ms']:.2f}"] if t else ["-"] * 3
        line += [_fmt(row.get(k), 2) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")]
        line += [_fmt(row.get(k), 2, signed=True) for k in ("delta_rank1", "delta_mAP")]
        line += [_fmt(row.get(k), 6) for k in ("cosine_min", "cosine_mean")]
        if with_attributes:
            line += [_fmt(row.get(k), 2) for k in ("attr_mean_accuracy", "attr_mA")]
        cells.append(line)
    return header, cells


def print_table(report: dict, *, title: str = "reid-export bench") -> None:
    from rich.console import Console
    from rich.table import Table

    header, cells = table_rows(report)
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="left" if h in ("runtime", "precision", "provider", "status") else "right")
    notes = []  # a failed/skipped row's reason, in full and wrapped, under the table
    status_at = header.index("status")
    for row, line in zip(report["rows"], cells):
        kind, _, reason = row["status"].partition(": ")
        if reason:
            notes.append(f"[{len(notes) + 1}] {row['runtime']} {Path(row['model']).name}: {kind}: {reason}")
            line = [*line[:status_at], f"{kind} [{len(notes)}]", *line[status_at + 1:]]
        table.add_row(*line)
    console = Console(width=max(160, len(header) * 11))
    console.print(table)
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
        "come from each runtime's own embeddings of every query and gallery image; cosine is against the "
        f"reference row ({_reference(report)}).",
        "",
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


def _stage_table(report: dict) -> list[str]:
    rows = [r for r in report["rows"] if r.get("stages")]
    if not rows:
        return []
    paths = list(rows[0]["stages"]["images_per_sec"])
    header = ["runtime", "batch", *[f"{s} ms" for s in STAGES], "bound by", *[f"img/s {p}" for p in paths]]
    lines = ["", "## Where the time goes (whole path per batch, median ms)", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        st = r["stages"]
        cells = [row_label(r), str(st["batch_size"]), *[f"{st['stages_ms'][f'{s}_ms']:.2f}" for s in STAGES],
                 st["bound_by"], *[f"{st['images_per_sec'][p]:.1f}" for p in paths]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
