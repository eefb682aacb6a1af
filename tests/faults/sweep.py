"""The fault sweep: bad inputs and faults on every subcommand, run through the real CLI as a new user
would (one subprocess each), with the exit code and the message each should give.

    python tests/faults/sweep.py        # prints one line per case and the counts
    pytest tests/faults                 # the same cases as tests (part of the suite)

A case passes when the command exits with its code, prints its message, prints no Python traceback,
and (where given) its check of the files afterwards holds (nothing lost, no half outputs). A serve case
sends one raw HTTP request to one of two live servers shared by the sweep (serve_cases.py): it passes on
its status and message, no 5xx, and the server still up afterwards."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fault_case import Case, Outcome, Request  # noqa: E402
from live import Server, request  # noqa: E402
from serve_cases import serve_cases, serve_fixtures, start_servers  # noqa: E402

__all__ = ["Case", "Outcome", "Request", "build_fixtures", "cases", "placeholder_fixtures", "run_sweep", "summary"]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4


def build_fixtures(base: Path) -> dict[str, Path]:
    """Tiny inputs for every case: a synthetic Market-1501, checkpoints (good, NaN, wrong arch, unknown arch,
    pickled code), ONNX files (good, garbage, lying contract, external data outside its folder), a course-less
    Market folder with a tiny and a corrupt image, files in the way, an earlier report."""
    import onnx
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    from onnx_files import onnx_with_external_data_outside
    from tiny_models import TINY, make_tiny_model

    from reid_export.artefacts.onnx_metadata import METADATA_KEY, set_metadata
    from reid_export.checkpoint import save_checkpoint
    from reid_export.contract import Preprocess
    from reid_export.data.synthetic import generate_market1501
    from reid_export.export.onnx import export_onnx
    from reid_export.models import ModelConfig, ReidNet

    small = dict(train_ids=3, test_ids=3, distractors=2, junk=2, train_images=(3, 3), gallery_images=(2, 3),
                 cameras_per_id=(2, 2), progress=False)
    f = {"base": base, "market": base / "market", "bad_market": base / "bad_market"}
    generate_market1501(f["market"], **small)
    generate_market1501(f["bad_market"], seed=1, **small)
    queries = sorted((f["bad_market"] / "query").iterdir())
    Image.new("RGB", (4, 4)).save(queries[0], format="JPEG")  # a 4 x 4 px crop
    gallery = sorted((f["bad_market"] / "bounding_box_test").iterdir())
    gallery[0].write_bytes(gallery[0].read_bytes()[:150])  # truncated
    model = make_tiny_model()
    f["ckpt"] = save_checkpoint(base / "tiny.pt", model, epoch=1)
    torch.save(model.backbone.state_dict(), base / "backbone.pth")
    f["backbone"] = base / "backbone.pth"
    nan = make_tiny_model()
    with torch.no_grad():
        nan.backbone[0].weight.fill_(float("nan"))
    f["nan"] = save_checkpoint(base / "nan.pt", nan, epoch=1)
    wrong = torch.load(f["ckpt"], weights_only=True)
    wrong["model"] = ReidNet(ModelConfig(arch="resnet34", num_classes=8, neck="bnneck", preprocess=TINY)).state_dict()
    torch.save(wrong, base / "wrong_arch.pt")
    f["wrong_arch"] = base / "wrong_arch.pt"
    odd = torch.load(f["ckpt"], weights_only=True)
    odd["config"]["arch"] = "resnet9000"
    torch.save(odd, base / "odd_arch.pt")
    f["odd_arch"] = base / "odd_arch.pt"
    torch.save({"model": _RunsCode()}, base / "evil.pt")
    f["evil"] = base / "evil.pt"
    (base / "garbage.pt").write_bytes(b"not a checkpoint at all")
    f["garbage_pt"] = base / "garbage.pt"
    f["onnx"] = export_onnx(model, base / "tiny.onnx")
    (base / "garbage.onnx").write_bytes(b"\x00" * 64)
    f["garbage_onnx"] = base / "garbage.onnx"
    proto = onnx.load(str(f["onnx"]))
    set_metadata(proto, {METADATA_KEY: Preprocess(height=256, width=128).to_json()})
    onnx.save(proto, str(base / "lying.onnx"))
    f["lying"] = base / "lying.onnx"
    f["external"] = onnx_with_external_data_outside(base / "ext")
    (base / "a_folder.onnx").mkdir()
    f["dir_onnx"] = base / "a_folder.onnx"
    (base / "file.txt").write_text("the user's notes\n")
    f["file"] = base / "file.txt"
    (base / "model.xyz").write_text("?")
    f["xyz"] = base / "model.xyz"
    (base / "notes.json").write_text('{"no": "rows"}')
    f["bad_report"] = base / "notes.json"
    earlier = base / "earlier_bench"
    earlier.mkdir()
    (earlier / "report.json").write_text('{"rows": []}')
    f["earlier"] = earlier
    full = base / "full_folder"
    full.mkdir()
    (full / "keep.png").write_text("mine")
    f["full_folder"] = full
    existing = base / "existing.onnx"
    existing.write_bytes(b"the user's model")
    f["existing"] = existing
    existing_pt = base / "existing.pt"
    existing_pt.write_bytes(b"the user's checkpoint")
    f["existing_pt"] = existing_pt
    locked = base / "locked.pt"
    (base / ".locked.pt.lock").write_text(json.dumps({  # held by this (live) process, as a running train would
        "pid": os.getpid(), "host": socket.gethostname(), "command": "reid-export train --out locked.pt",
        "since": "now"}))
    f["locked"] = locked
    for name in ("overwrite_data", "overwrite_bench_data", "contains_data"):  # inputs an --overwrite must keep
        f[name] = shutil.copytree(f["market"], base / name)
    user = base / "user_folder"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work\n")
    f["user_folder"] = user
    repo = base / "triton_repo" / "reid" / "1"
    repo.mkdir(parents=True)
    f["in_repo"] = Path(shutil.copy(f["onnx"], repo / "model.onnx"))
    (base / "triton_user" / "photos").mkdir(parents=True)
    (base / "triton_user" / "photos" / "cat.jpg").write_text("a cat")
    f["triton_user"] = base / "triton_user"
    f["ckpt_named_onnx"] = Path(shutil.copy(f["ckpt"], base / "ckpt_as.onnx"))
    serve_fixtures(f)
    return f


def placeholder_fixtures() -> dict:
    """Stand-ins for `build_fixtures` that are enough to list the cases (their names) without building anything."""
    return defaultdict(lambda: Path("/x"))


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would have run",))


def cases(f: dict[str, Path]) -> list[Case]:
    b, m, q = f["base"], str(f["market"]), "-q"
    fast = ["--batch-sizes", "1", "--no-stages", q]

    def unchanged(path: Path, content: str) -> Callable[[], str | None]:
        return lambda: None if path.read_text() == content else f"{path} was changed"

    def absent(*paths: Path) -> Callable[[], str | None]:
        return lambda: next((f"{p} exists" for p in paths if p.exists()), None)

    def present(*paths: Path) -> Callable[[], str | None]:
        return lambda: next((f"{p} is missing" for p in paths if not p.exists()), None)

    return [
        # -- synth
        Case("synth into a file", ["synth", str(f["file"]), q], 2, "is a file", "disk",
             unchanged(f["file"], "the user's notes\n")),
        Case("synth into a folder holding a data set", ["synth", m, q], 2, "already holds files", "data-loss"),
        Case("synth with 0 train ids", ["synth", str(b / "s0"), "--train-ids", "0", q], 2, "train", "input"),
        Case("synth with a word for a number", ["synth", str(b / "s1"), "--train-ids", "many"], 2, "--train-ids",
             "input"),
        Case("synth under a file", ["synth", str(f["file"] / "sub"), q], 2, "is a file", "disk"),
        Case("synth with a negative seed", ["synth", str(b / "s2"), "--seed", "-1", q], 2, "--seed", "input"),
        # -- train
        Case("train on a missing folder", ["train", "--data", str(b / "nope"), "-o", str(b / "t.pt"), q], 2,
             "found nothing there", "input"),
        Case("train onto an existing checkpoint", ["train", "--data", m, "-o", str(f["existing_pt"]), q], 2,
             "already exists", "data-loss", unchanged(f["existing_pt"], "the user's checkpoint")),
        Case("train --out a folder", ["train", "--data", m, "-o", str(f["earlier"]), q], 2, "is a folder", "disk"),
        Case("train --resume without a checkpoint", ["train", "--data", m, "-o", str(b / "r.pt"), "--resume", q], 2,
             "no checkpoint at", "input"),
        Case("train with an unknown recipe", ["train", "--data", m, "-o", str(b / "u.pt"), "--recipe", "nosuch", q], 2,
             "nosuch", "input"),
        Case("train --set without =", ["train", "--data", m, "-o", str(b / "v.pt"), "--set", "epochs", q], 2,
             "KEY=VALUE", "input"),
        Case("train an unknown arch", ["train", "--data", m, "-o", str(b / "w.pt"), "--arch", "resnet9", q], 2,
             "unknown arch", "input"),
        Case("train --out under a file", ["train", "--data", m, "-o", str(f["file"] / "m.pt"), q], 2, "is a file",
             "disk"),
        Case("train on a file as data", ["train", "--data", str(f["file"]), "-o", str(b / "x.pt"), q], 2, "file",
             "input"),
        Case("train while another train writes --out", ["train", "--data", m, "-o", str(f["locked"]), q], 2,
             "is being written by pid", "data-loss", absent(f["locked"])),
        Case("train --resume on a bare backbone", ["train", "--data", m, "-o", str(f["backbone"]), "--resume", q], 2,
             "not a reid-export training checkpoint", "input"),
        # -- onnx
        Case("onnx of a missing file", ["onnx", str(b / "none.pt"), "-o", str(b / "n.onnx"), q], 2, "no such file",
             "input"),
        Case("onnx --opset 99", ["onnx", str(f["ckpt"]), "-o", str(b / "o99.onnx"), "--opset", "99", q], 2,
             "--opset 99 is not supported", "honest", absent(b / "o99.onnx")),
        Case("onnx -o a folder named .onnx", ["onnx", str(f["ckpt"]), "-o", str(f["dir_onnx"]), "--overwrite", q], 2,
             "is a folder", "disk", present(f["dir_onnx"])),
        Case("onnx onto an existing file", ["onnx", str(f["ckpt"]), "-o", str(f["existing"]), q], 2, "already exists",
             "data-loss"),
        Case("onnx -o without .onnx", ["onnx", str(f["ckpt"]), "-o", str(b / "m.txt"), q], 2, "must end in .onnx",
             "input"),
        Case("onnx --precision fp8", ["onnx", str(f["ckpt"]), "-o", str(b / "p.onnx"), "--precision", "fp8", q], 2,
             "fp32, fp16, int8", "input"),
        Case("onnx of a pickle that runs code", ["onnx", str(f["evil"]), "-o", str(b / "e.onnx"), q], 2,
             "was not loaded, for safety", "honest", forbid=["weights_only", "this would have run"]),
        Case("onnx of a wrong-arch checkpoint", ["onnx", str(f["wrong_arch"]), "-o", str(b / "wa.onnx"), q], 2,
             "its weights are for resnet34 but its config says resnet18", "honest"),
        Case("onnx of an unknown arch", ["onnx", str(f["odd_arch"]), "-o", str(b / "oa.onnx"), q], 2,
             "odd_arch.pt: its model config cannot be used (unknown arch 'resnet9000'", "honest"),
        Case("onnx --height 0", ["onnx", str(f["backbone"]), "-o", str(b / "h0.onnx"), "--height", "0", q], 2,
             "--height", "input"),
        Case("onnx --width -5", ["onnx", str(f["backbone"]), "-o", str(b / "w5.onnx"), "--width", "-5", q], 2,
             "--width", "input"),
        Case("onnx of a garbage file", ["onnx", str(f["garbage_pt"]), "-o", str(b / "g.onnx"), q], 2,
             "cannot be read", "input"),
        Case("onnx int8 without calibration data", ["onnx", str(f["ckpt"]), "-o", str(b / "i8.onnx"), "--precision",
                                                    "int8", q], 2, "needs --calib-data", "input"),
        Case("onnx --exporter foo", ["onnx", str(f["ckpt"]), "-o", str(b / "ex.onnx"), "--exporter", "foo", q], 2,
             "unknown exporter", "input"),
        Case("onnx under a file", ["onnx", str(f["ckpt"]), "-o", str(f["file"] / "m.onnx"), q], 2, "is a file",
             "disk"),
        Case("onnx failing parity deletes it", ["onnx", str(f["ckpt"]), "-o", str(b / "par.onnx"), "--min-cosine",
                                                "1", q], 1, "it was deleted", "honest", absent(b / "par.onnx")),
        Case("onnx -o and --output together", ["onnx", str(f["ckpt"]), "-o", str(b / "a.onnx"), "--output",
                                               str(b / "b.onnx"), q], 2, "give the output once", "input"),
        # -- trt
        Case("trt of a missing file", ["trt", str(b / "none.onnx"), "-o", str(b / "n.engine")], 2, "no such", "input"),
        Case("trt without TensorRT", ["trt", str(f["onnx"]), "-o", str(b / "t.engine")], 2, "tensorrt", "runtime-row"),
        # -- bench
        Case("bench with an unknown runtime", ["bench", "--data", m, "--model", f"foo={f['onnx']}", *fast], 2,
             "unknown runtime 'foo'; runtimes: torch", "honest"),
        Case("bench a missing model", ["bench", "--data", m, "--model", str(b / "none.onnx"), *fast], 2,
             "no such file", "input"),
        Case("bench a .xyz model", ["bench", "--data", m, "--model", str(f["xyz"]), *fast], 2,
             "cannot tell which runtime", "input"),
        Case("bench --batch-sizes 0", ["bench", "--data", m, "--model", str(f["onnx"]), "--batch-sizes", "0", q], 2,
             "--batch-sizes", "input"),
        Case("bench --batch-sizes a,b", ["bench", "--data", m, "--model", str(f["onnx"]), "--batch-sizes", "a,b", q],
             2, "whole numbers", "input"),
        Case("bench --compare a non-report", ["bench", "--data", m, "--model", str(f["onnx"]), "--compare",
                                              str(f["bad_report"]), "-o", str(b / "bc1"), *fast], 2,
             "not a report.json", "honest", absent(b / "bc1" / "report.json")),
        Case("bench --compare a missing file", ["bench", "--data", m, "--model", str(f["onnx"]), "--compare",
                                                str(b / "none.json"), "-o", str(b / "bc2"), *fast], 2,
             "not a report.json", "honest"),
        Case("bench --out a file", ["bench", "--data", m, "--model", str(f["onnx"]), "-o", str(f["file"]), *fast], 2,
             "is a file", "disk", unchanged(f["file"], "the user's notes\n")),
        Case("bench --out an earlier report", ["bench", "--data", m, "--model", str(f["onnx"]), "-o", str(f["earlier"]),
                                               *fast], 2, "--overwrite", "data-loss",
             unchanged(f["earlier"] / "report.json", '{"rows": []}')),
        Case("bench a missing data folder", ["bench", "--data", str(b / "nope"), "--model", str(f["onnx"]), *fast], 2,
             "does not exist", "input"),
        Case("bench NaN weights next to a good ONNX", ["bench", "--data", m, "--model", str(f["nan"]), "--model",
                                                       str(f["onnx"]), "-o", str(b / "bn"), *fast], 1,
             "embeddings are not finite (first:", "runtime-row", present(b / "bn" / "report.json")),
        Case("bench only a garbage ONNX", ["bench", "--data", m, "--model", str(f["garbage_onnx"]), "-o",
                                           str(b / "bg"), *fast], 1, "no row could run", "runtime-row",
             present(b / "bg" / "report.json")),
        Case("bench a batch too big for memory", ["bench", "--data", m, "--model", str(f["onnx"]), "--batch-sizes",
                                                  "1,100000000", "--no-stages", "-o", str(b / "bm"), q], 0,
             "skipped", "runtime-row", present(b / "bm" / "report.json")),
        Case("bench a contract that lies about its graph", ["bench", "--data", m, "--model", str(f["lying"]),
                                                            "--model", str(f["onnx"]), "-o", str(b / "bl"), *fast], 1,
             "metadata contract says input 256x128", "honest"),
        Case("bench on a machine without a GPU", ["bench", "--data", m, "--model", f"torch-cuda={f['ckpt']}", "-o",
                                                  str(b / "bgpu"), *fast], 1, "no row could run", "runtime-row"),
        Case("bench external data outside the model folder", ["bench", "--data", m, "--model", str(f["external"]),
                                                              "-o", str(b / "bx"), *fast], 1, "refused for safety",
             "honest", forbid=["skipped: "]),
        Case("bench a 4 px and a truncated image", ["bench", "--data", str(f["bad_market"]), "--model", str(f["onnx"]),
                                                    *fast], 2, "smaller than 8 px", "image"),
        Case("bench a truncated image", ["bench", "--data", str(f["bad_market"]), "--model", str(f["onnx"]), *fast],
             2, "cannot be decoded", "image"),
        # -- visualize
        Case("visualize --out a file", ["visualize", "--data", m, "--model", str(f["onnx"]), "-o", str(f["file"]), q],
             2, "is a file", "disk", unchanged(f["file"], "the user's notes\n")),
        Case("visualize into a non-empty folder", ["visualize", "--data", m, "--model", str(f["onnx"]), "-o",
                                                   str(f["full_folder"]), q], 2, "not empty", "data-loss",
             unchanged(f["full_folder"] / "keep.png", "mine")),
        Case("visualize without -o", ["visualize", "--data", m, "--model", str(f["onnx"]), q], 2,
             "missing option -o/--out", "input"),
        Case("visualize a missing model", ["visualize", "--data", m, "--model", str(b / "none.onnx"), "-o",
                                           str(b / "vm"), q], 2, "no such file", "input"),
        # -- predict
        Case("predict on a Market-1501 folder", ["predict", "--data", m, "--model", str(f["onnx"]), "-o",
                                                 str(b / "pm"), q], 2, "reid-export bench --data", "honest",
             forbid=["load_market1501"]),
        Case("predict -o a file", ["predict", "--data", m, "--model", str(f["onnx"]), "-o", str(f["file"]), q], 2,
             "is a file", "disk"),
        Case("predict without -o", ["predict", "--data", m, "--model", str(f["onnx"]), q], 2, "missing option",
             "input"),
        # -- demo
        Case("demo --out a file", ["demo", "-o", str(f["file"]), q], 2, "is a file", "disk",
             unchanged(f["file"], "the user's notes\n")),
        Case("demo into a non-empty folder", ["demo", "-o", str(f["full_folder"]), q], 2, "not empty", "data-loss"),
        # -- the command line itself
        Case("an unknown command", ["frobnicate"], 2, "no such command", "input"),
        Case("an unknown option", ["bench", "--frobnicate"], 2, "no such option", "input"),
        # -- --overwrite replaces only what the command made, never one of its inputs (issue 17)
        Case("index build --overwrite a user's folder", ["index", "build", "--data", m, "--model", str(f["onnx"]),
                                                         "-o", str(f["user_folder"]), "--overwrite", q], 2,
             "gallery", "data-loss", unchanged(f["user_folder"] / "thesis.txt", "years of work\n")),
        Case("index build --overwrite -o equal to --data", ["index", "build", "--data", str(f["overwrite_data"]),
                                                            "--model", str(f["onnx"]), "-o", str(f["overwrite_data"]),
                                                            "--overwrite", q], 2, "input", "data-loss",
             present(f["overwrite_data"] / "bounding_box_test", f["overwrite_data"] / "query")),
        Case("index build --overwrite -o holding --data", ["index", "build", "--data",
                                                           str(f["contains_data"] / "bounding_box_test"), "--model",
                                                           str(f["onnx"]), "-o", str(f["contains_data"]), "--overwrite",
                                                           q], 2, "input", "data-loss",
             present(f["contains_data"] / "bounding_box_test", f["contains_data"] / "query")),
        Case("bench --overwrite a user's folder", ["bench", "--data", m, "--model", str(f["onnx"]), "-o",
                                                   str(f["full_folder"]), "--overwrite", *fast], 2, "report",
             "data-loss", unchanged(f["full_folder"] / "keep.png", "mine")),
        Case("bench --overwrite -o equal to --data", ["bench", "--data", str(f["overwrite_bench_data"]), "--model",
                                                      str(f["onnx"]), "-o", str(f["overwrite_bench_data"]),
                                                      "--overwrite", *fast], 2, "bench", "data-loss",
             present(f["overwrite_bench_data"] / "bounding_box_test", f["overwrite_bench_data"] / "query")),
        Case("triton --overwrite the folder holding its input", ["triton", str(f["in_repo"]), "-o",
                                                                 str(b / "triton_repo"), "--overwrite"], 2,
             "model.onnx", "data-loss", present(f["in_repo"])),
        Case("triton --overwrite a user's folder", ["triton", str(f["onnx"]), "-o", str(f["triton_user"]), "--name",
                                                    "photos", "--overwrite"], 2, "photos", "data-loss",
             present(f["triton_user"] / "photos" / "cat.jpg")),
        Case("deepstream --overwrite a user's folder", ["deepstream", str(f["ckpt"]), "-o", str(f["user_folder"]),
                                                        "--overwrite"], 2, "user_folder", "data-loss",
             unchanged(f["user_folder"] / "thesis.txt", "years of work\n")),
        Case("onnx -o equal to its input", ["onnx", str(f["ckpt_named_onnx"]), "-o", str(f["ckpt_named_onnx"]),
                                            "--overwrite", q], 2, "ckpt_as.onnx", "data-loss",
             lambda: None if f["ckpt_named_onnx"].read_bytes() == f["ckpt"].read_bytes() else "the input was replaced"),
        # -- numbers: finite, in range, refused where they enter, naming the option (issue 17)
        *[Case(f"{' '.join(cmd[:2] if cmd[0] == 'index' else cmd[:1])} {option} {value}", [*cmd, option, value], 2,
               option, "input", timeout_s=180)
          for cmd, option, value in [
              (["index", "build", "--data", m, "--model", str(f["onnx"]), "-o", str(b / "nb0"), q], "--batch-size",
               "0"),
              (["index", "add", str(f["g_spare"]), str(f["dup_src"]), "--model", str(f["onnx"]), q], "--batch-size",
               "0"),
              (["index", "add", str(f["g_spare"]), str(f["dup_src"]), "--model", str(f["onnx"]), q], "--commit-every",
               "0"),
              (["bench", "--data", m, "--model", str(f["onnx"]), "-o", str(b / "nm1"), *fast], "--max-map-drop", "-1"),
              (["bench", "--data", m, "--model", str(f["onnx"]), "-o", str(b / "nr1"), *fast], "--max-rank1-drop",
               "nan"),
              (["bench", "--data", m, "--model", str(f["onnx"]), "-o", str(b / "nu1"), *fast], "--preprocess-upscale",
               "0"),
              (["onnx", str(f["ckpt"]), "-o", str(b / "nc1.onnx"), q], "--min-cosine", "nan"),
              (["onnx", str(f["ckpt"]), "-o", str(b / "no1.onnx"), q], "--opset", "0"),
              (["onnx", str(f["ckpt"]), "-o", str(b / "ni1.onnx"), "--precision", "int8", "--calib-data", m, q],
               "--calib-images", "0"),
              (["onnx", str(f["ckpt"]), "-o", str(b / "ni2.onnx"), "--precision", "int8", "--calib-data", m, q],
               "--max-map-drop", "-1"),
              (["trt", str(f["onnx"]), "-o", str(b / "nt1.engine")], "--min-batch", "0"),
              (["trt", str(f["onnx"]), "-o", str(b / "nt3.engine")], "--opt-batch", "0"),
              (["deepstream", str(f["ckpt"]), "-o", str(b / "nd1")], "--workspace-mb", "-5"),
              (["deepstream", str(f["ckpt"]), "-o", str(b / "nd2")], "--batch-size", "0"),
              (["triton", str(f["onnx"]), "-o", str(b / "ntr1")], "--max-batch", "0"),
              (["triton", str(f["onnx"]), "-o", str(b / "ntr2")], "--instances", "0"),
              (["synth", str(b / "ns1"), q], "--test-ids", "-1"),
              (["train", "--data", m, "-o", str(b / "ntn1.pt"), q], "--epochs", "0"),
              (["train", "--data", m, "-o", str(b / "ntn3.pt"), q], "--lr", "nan"),
              (["visualize", "--data", m, "--model", str(f["onnx"]), "-o", str(b / "nv2"), q], "--top-k", "0"),
          ]],
        *serve_cases(f),
    ]


def run_case(case: Case, servers: dict[str, Server] | None = None) -> Outcome:
    start = time.perf_counter()
    if case.http is not None:
        rc, output, problems = _send(case, servers[case.http.server])
    else:
        rc, output, problems = _run_command(case)
    if rc != case.rc and rc not in (case.rc if isinstance(case.rc, tuple) else ()):
        problems.append(f"{'status' if case.http else 'exit code'} {rc}, expected {case.rc}")
    if case.message.lower() not in output.lower():
        problems.append(f"message {case.message!r} not in the output")
    if "Traceback (most recent call last)" in output:
        problems.append("printed a Python traceback")
    problems += [f"printed {text!r}" for text in case.forbid if text.lower() in output.lower()]
    if case.check is not None and (problem := case.check()):
        problems.append(problem)
    return Outcome(case, rc, output, time.perf_counter() - start, problems)


def run_sweep(base: Path, workers: int = WORKERS) -> list[Outcome]:
    fixtures = build_fixtures(base)
    fixtures["servers"] = servers = start_servers(fixtures)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(partial(run_case, servers=servers), cases(fixtures)))
    finally:
        for server in servers.values():
            server.stop()


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    return {
        "cases": len(outcomes),
        "passed": sum(not o.problems for o in outcomes),
        "server_errors_5xx": sum(o.server_error for o in outcomes),
        "tracebacks": sum(o.traceback for o in outcomes),
        "data_loss": sum(bool(o.problems) and o.case.category == "data-loss" for o in outcomes),
        "unclear_messages": sum(any(p.startswith("message") or p.startswith("printed '") for p in o.problems)
                                for o in outcomes),
        "wrong_exit_codes": sum(any(p.startswith(("exit code", "status")) for p in o.problems) for o in outcomes),
        "servers_down": sum(any(p.startswith("the server") for p in o.problems) for o in outcomes),
    }


def _run_command(case: Case) -> tuple[int, str, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", "reid_export.cli", *case.args], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=case.timeout_s)
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        return -1, output, [f"still running after {case.timeout_s:.0f} s (killed): nothing refused it"]
    return proc.returncode, proc.stdout + proc.stderr, []


def _send(case: Case, server: Server) -> tuple[int, str, list[str]]:
    r = case.http
    fill = {"port": server.port, "item": server.items[0], "last": server.items[-1]}
    headers = {k: v.format(**fill) for k, v in r.headers.items()}
    status, output = request(server.port, r.method, r.path.format(**fill), headers, r.body,
                             timeout_s=min(case.timeout_s, 120.0), complete=r.complete)
    problems = []
    if status >= 500:
        problems.append(f"answered {status}: a server error")
    if status == -1:
        problems.append(f"no answer and the connection still open after {min(case.timeout_s, 120.0):.0f} s")
    if not server.up():
        problems.append("the server is down after this request")
    return status, output, problems


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reid-faults-") as tmp:
        results = run_sweep(Path(tmp))
        for o in results:
            status = "ok  " if not o.problems else "FAIL"
            print(f"{status} rc={o.rc} {o.seconds:5.1f}s [{o.case.category}] {o.case.name}"
                  + ("" if not o.problems else f": {'; '.join(o.problems)}"))
        print(json.dumps(summary(results)))
        sys.exit(0 if all(not o.problems for o in results) else 1)
