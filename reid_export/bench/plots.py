"""The bench plots: throughput vs batch size, and accuracy vs throughput (one point per row).

One colour per architecture (`arch_colours`: matplotlib's tab10 cycle, archs in order of first appearance)
in both plots; the marker says the precision (fp32 circle, fp16 square, int8 triangle, anything else a
diamond), and each point on the accuracy plot is named by runtime and precision."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_path

__all__ = ["write_plots", "row_label", "arch_of_row", "arch_colours", "PRECISION_MARKERS"]

PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}  # any other precision: "D"


def write_plots(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """throughput.png (images/s vs batch size per runtime) and accuracy_vs_throughput.png (mAP vs images/s
    at the largest measured batch, one point per runtime x precision). Rows that did not run are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    rows = [r for r in report["rows"] if r["status"] == "ok" and r.get("throughput")]
    if not rows:
        return {}
    written = {}
    colours = arch_colours(rows)
    several = len(colours) > 1
    styles = ("-", "--", ":", "-.")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, row in enumerate(rows):
        points = sorted((int(bs), t["images_per_sec"]) for bs, t in row["throughput"].items()
                        if "images_per_sec" in t)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=_marker(row), color=colours[arch_of_row(row)],
                linestyle=styles[n % len(styles)], label=f"{arch_of_row(row)} {row_label(row)}" if several else row_label(row))
    ax.set_xscale("log", base=2)
    sizes = sorted({int(bs) for row in rows for bs in row["throughput"]})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s (model only, median)")
    ax.set_title("Throughput vs batch size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    written["Throughput vs batch size"] = _save(fig, out_dir / "throughput.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        ok = {int(bs): t for bs, t in row["throughput"].items() if "images_per_sec" in t}
        if not ok:  # every batch size skipped or out of memory: nothing to place
            continue
        bs = max(ok)
        ax.scatter(ok[bs]["images_per_sec"], row["mAP"], s=50, color=colours[arch_of_row(row)], marker=_marker(row))
        ax.annotate(f"{row_label(row)} @{bs}", (ok[bs]["images_per_sec"], row["mAP"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    from matplotlib.lines import Line2D

    legend = [Line2D([], [], linestyle="", marker="o", color=colour, label=arch) for arch, colour in colours.items()]
    legend += [Line2D([], [], linestyle="", marker=marker, color="grey", label=precision)
               for precision, marker in PRECISION_MARKERS.items() if any(r.get("precision") == precision for r in rows)]
    ax.legend(handles=legend, fontsize=8)
    ax.set_xlabel("images/s at the largest batch measured")
    ax.set_ylabel("mAP (%)")
    ax.set_title("Accuracy vs throughput")
    ax.grid(True, alpha=0.3)
    written["Accuracy vs throughput"] = _save(fig, out_dir / "accuracy_vs_throughput.png")
    return written


def row_label(row: dict) -> str:
    """How a report row is named in tables and plots: "onnxruntime int8"."""
    return f"{row['runtime']} {row.get('precision', '')}".strip()


def arch_of_row(row: dict) -> str:
    """The row's architecture, "-" when it is not known (a row that failed before loading, an older report)."""
    return row.get("arch") or "-"


def arch_colours(rows: list[dict]) -> dict[str, str]:
    """arch -> colour, matplotlib's tab10 cycle ("C0", "C1", ...) in order of first appearance."""
    colours: dict[str, str] = {}
    for row in rows:
        colours.setdefault(arch_of_row(row), f"C{len(colours) % 10}")
    return colours


def _marker(row: dict) -> str:
    return PRECISION_MARKERS.get(row.get("precision"), "D")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
