"""The track-bench report: the console table, report.json, report.md and idf1_vs_reid_ms.png."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_path, write_text
from .plots import PRECISION_MARKERS, arch_colours, arch_of_row

__all__ = ["table_lines", "write_track_report", "TRACK_REPORT_FILES"]

TRACK_REPORT_FILES = ("report.json", "report.md", "idf1_vs_reid_ms.png")
# (header, row key, format); deltas are against the torch FP32 row of the same arch and tracker
_COLUMNS = (
    ("tracker", "tracker", "{}"), ("Re-ID", "runtime", "{}"), ("prec", "precision", "{}"), ("HOTA", "HOTA", "{:.1f}"),
    ("DetA", "DetA", "{:.1f}"), ("AssA", "AssA", "{:.1f}"), ("IDF1", "IDF1", "{:.1f}"), ("IDSW", "IDSW", "{}"),
    ("MOTA", "MOTA", "{:.1f}"), ("IDF1 vs none", "IDF1_over_none", "{:+.1f}"), ("xcam IDF1", "xcam_IDF1", "{:.1f}"),
    ("xcam vs none", "xcam_IDF1_over_none", "{:+.1f}"), ("hand-over", "handover_threshold", "{:g}"),
    ("dIDF1", "delta_IDF1", "{:+.2f}"), ("dHOTA", "delta_HOTA", "{:+.2f}"), ("dxcam", "delta_xcam_IDF1", "{:+.2f}"),
    ("Re-ID ms/frame", "reid_ms_per_frame", "{:.1f}"), ("tracker ms/frame", "tracker_ms_per_frame", "{:.1f}"),
)


def table_lines(report: dict) -> list[str]:
    """The rows as an aligned text table, then one line per failed row."""
    ok = [row for row in report["rows"] if row["status"] == "ok"]
    cells = [[header for header, _, _ in _COLUMNS]]
    cells += [[_cell(row, key, fmt) for _, key, fmt in _COLUMNS] for row in ok]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in cells]
    lines += [f"failed: {row['tracker']} {row['runtime']} {row['model']}: {row['status']}"
              for row in report["rows"] if row["status"] != "ok"]
    return lines


def write_track_report(report: dict, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    written = [write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n"),
               write_text(out_dir / "report.md", _markdown(report))]
    plot = _plot(report, out_dir / "idf1_vs_reid_ms.png")
    return written + ([plot] if plot else [])


def _markdown(report: dict) -> str:
    failed = [line for line in table_lines(report) if line.startswith("failed:")]
    ok = [row for row in report["rows"] if row["status"] == "ok"]
    md = ["# track-bench", "", f"Data: `{report['data']}`, {len(report['sequences'])} sequences "
          f"({sum(s['frames'] for s in report['sequences'])} frames), wall time {report['wall_s']} s.", "",
          "| " + " | ".join(h for h, _, _ in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    md += ["| " + " | ".join(_cell(row, key, fmt) for _, key, fmt in _COLUMNS) + " |" for row in ok]
    tuned = f"chosen per row on {', '.join(report['tune_sequences'])}" if report.get("tune_sequences") else "given"
    md += ["", "HOTA, DetA, AssA, IDF1 and MOTA in percent (TrackEval); IDSW a count. `none`: the tracker on motion "
           "alone. `xcam IDF1`: tracklets joined within and across cameras by their mean embeddings (average-linkage "
           f"clustering up to the `hand-over` cosine distance, {tuned}), scored over all cameras. "
           "d columns: change against the torch FP32 row of the same architecture and tracker."]
    md += [f"- {line}" for line in failed]
    return "\n".join(md) + "\n"


def _plot(report: dict, path: Path) -> Path | None:
    """IDF1 against Re-ID ms per frame, one panel per tracker: a marker per runtime and precision (colour: arch,
    shape: precision), the tracker without appearance as a dashed line."""
    import matplotlib  # lazy: only the report writer plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in report["rows"] if row["status"] == "ok"]
    trackers = list(dict.fromkeys(row["tracker"] for row in ok))
    if not trackers:
        return None
    models = [row for row in ok if row["runtime"] != "none"]
    colours = arch_colours(models)
    fig, axes = plt.subplots(1, len(trackers), figsize=(5.5 * len(trackers), 4.2), squeeze=False)
    for ax, tracker in zip(axes[0], trackers):
        for row in (r for r in ok if r["tracker"] == tracker):
            if row["runtime"] == "none":
                ax.axhline(row["IDF1"], color="grey", linestyle="--", label="none (motion only)")
                continue
            ax.scatter(row["reid_ms_per_frame"], row["IDF1"], marker=PRECISION_MARKERS.get(row["precision"], "D"),
                       color=colours[arch_of_row(row)], s=60)
            ax.annotate(f"{row['runtime']} {row['precision']}", (row["reid_ms_per_frame"], row["IDF1"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set(title=tracker, xlabel="Re-ID ms per frame", ylabel="IDF1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)
