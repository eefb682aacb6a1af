"""`reid-export adopt`: an ONNX exported elsewhere gets the project's contract and sidecar, checked against its
graph, and then runs in bench, index and serve like the project's own exports.

Two foreign files: a hand-made one (a small torch model exported with the legacy `torch.onnx` tracer, dynamic
batch, input `x`, output `feat`, no metadata, no sidecar) and one as boxmot 25 exports it (input `images`,
one output, batch fixed at 1, and boxmot's `NAME.onnx.metadata.json` beside it). The boxmot file is written
by boxmot's own `ONNXExporter` when boxmot is importable. PyPI boxmot 25.0.0 would not pull another torch
(it asks torch>=2.2.1,<3), but its pins would downgrade this environment's pandas (<3) and pyarrow (<24) and
add opencv-python beside opencv-python-headless, so it is not a dependency here: without it the file is
written the way its exporter writes it (torch.onnx dynamo export, the same names and static batch, and a
sidecar with the fields boxmot 25.0.0 wrote in a run of its exporter on this model, `img_size` null and the
size in `input_shape`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from reid_export.artefacts.onnx_metadata import EMBEDDING_NAME, INPUT_NAME, read_onnx_info
from reid_export.artefacts.tracker_sidecar import read_tracker_sidecar, tracker_sidecar_path
from reid_export.contract import IMAGENET_MEAN, IMAGENET_STD
from reid_export.errors import ExportError, ReidExportError
from reid_export.export.adopt import adopt_onnx
from reid_export.runtimes import make_runtime

sys.path.insert(0, str(Path(__file__).parents[1] / "serve"))  # the serve tests' live-server helper
from serve_helpers import LiveServer  # noqa: E402

H, W = 64, 32
IMAGENET = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


class SmallNet(nn.Module):
    """conv-BN-ReLU x2, global pool, linear: (N, 3, 64, 32) -> (N, 24); optionally also the pooled feature."""

    def __init__(self, two_outputs: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 24)
        self.two_outputs = two_outputs
        self.body[1].running_mean.uniform_(-0.1, 0.1)
        self.body[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        pooled = self.body(x).flatten(1)
        return (self.fc(pooled), pooled) if self.two_outputs else self.fc(pooled)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    path = tmp_path_factory.mktemp("handmade") / "handmade.onnx"
    _legacy_export(SmallNet().eval(), path, ["feat"])
    return path


@pytest.fixture(scope="module")
def boxmot(tmp_path_factory):
    return _boxmot_export(SmallNet().eval(), tmp_path_factory.mktemp("boxmot") / "osnet_x0_25_msmt17.pt")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["handmade", "boxmot"])
def test_an_adopted_onnx_becomes_a_bench_row_and_a_served_gallery(case, request, tiny_market, tmp_path):
    src = request.getfixturevalue(case)
    before = _sha256(src)
    flags = ["--height", str(H), "--width", str(W), *IMAGENET, "--color", "rgb"] if case == "handmade" else []
    adopted = tmp_path / "adopted.onnx"
    result = _cli("adopt", str(src), "-o", str(adopted), *flags)
    assert result.returncode == 0, result.stderr
    assert "from: height " + ("--height flag" if case == "handmade" else f"{src.name}.metadata.json") in result.stdout
    assert _sha256(src) == before  # the input is never modified
    info = read_onnx_info(adopted)
    assert (info.contract.height, info.contract.width, info.contract.color) == (H, W, "RGB")
    assert info.model["adopted_from"] == {"file": src.name, "sha256": before} and info.precision == "fp32"
    assert read_tracker_sidecar(adopted)["reid_export"]["embedding_dim"] == 24

    bench = _cli("bench", "--data", str(tiny_market), "--model", str(adopted), "--batch-sizes", "1,4", "--no-stages",
                 "-o", str(tmp_path / "bench"), "-q")
    assert bench.returncode == 0, bench.stderr
    row = json.loads((tmp_path / "bench" / "report.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["precision"] == "fp32" and 0 <= row["mAP"] <= 100
    if case == "boxmot":  # its batch is fixed at 1: the sweep skips batch 4 instead of failing
        assert row["max_batch"] == 1 and "skipped" in row["throughput"]["4"]

    gallery = tmp_path / "gallery"
    assert _cli("index", "build", "--data", str(tiny_market), "--model", str(adopted), "-o", str(gallery),
                "-q").returncode == 0
    server = LiveServer(["--model", str(adopted), "--gallery", str(gallery)])
    server.start()
    try:
        query = sorted((tiny_market / "query").glob("*.jpg"))[0]
        response = httpx.post(server.url + "/v1/search", files={"image": (query.name, query.read_bytes(), "image/jpeg")},
                              data={"k": "3"}, timeout=60)
    finally:
        server.stop()
    assert response.status_code == 200 and len(response.json()["results"]) == 3


def test_the_adopted_graph_gives_the_foreign_models_own_embeddings(handmade, tmp_path):
    out = adopt_onnx(handmade, tmp_path / "a.onnx", height=H, width=W, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     color="rgb").path
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == [INPUT_NAME] and [o.name for o in graph.output] == [EMBEDDING_NAME]
    x = np.random.default_rng(0).standard_normal((5, 3, H, W), dtype=np.float32)
    with torch.no_grad():
        expected = SmallNet().eval()(torch.from_numpy(x)).numpy()
    with make_runtime("onnxruntime", out) as ort:
        assert ort.contract.l2_normalized is False  # measured: the foreign head is not normalised
        got = ort.infer(x)["embedding"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_batch_fixed_at_one_is_made_dynamic_when_two_images_give_the_two_single_results(tmp_path):
    src = tmp_path / "fixed.onnx"
    _legacy_export(SmallNet().eval(), src, ["feat"], dynamic=False)  # the tracer's flatten reads the batch size
    result = adopt_onnx(src, tmp_path / "a.onnx", height=H, width=W, mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb")
    assert result.batch == "made dynamic" and "max_batch" not in result.info.model
    with make_runtime("onnxruntime", result.path) as ort:
        assert ort.max_batch is None and ort.infer(np.zeros((3, 3, H, W), np.float32))["embedding"].shape == (3, 24)


def test_a_value_without_evidence_is_refused_naming_its_flag(handmade, tmp_path):
    result = _cli("adopt", str(handmade), "-o", str(tmp_path / "a.onnx"), "--height", str(H), "--width", str(W))
    assert result.returncode == 2
    assert "give --mean, --std, --color" in result.stderr and not (tmp_path / "a.onnx").exists()
    with pytest.raises(ReidExportError, match="give --input-scale 255 or --input-scale 1"):
        adopt_onnx(handmade, tmp_path / "b.onnx", height=H, width=W, mean="0,0,0", std="1,1,1", color="bgr")


def test_mean_and_std_in_0_255_units_mean_the_model_takes_0_255_pixels(handmade, tmp_path):
    result = adopt_onnx(handmade, tmp_path / "a.onnx", height=H, width=W, mean="123.675,116.28,103.53",
                        std="58.395,57.12,57.375", color="bgr")
    assert result.info.contract.scale == 1.0 and result.info.contract.color == "BGR"
    assert result.sources["input_scale"] == "inferred: --mean/--std are in 0-255 units"


def test_a_size_that_contradicts_the_graph_is_refused(boxmot, tmp_path):
    with pytest.raises(ExportError, match=r"H is 64, not 256, W is 32, not 128; give the --height/--width"):
        adopt_onnx(boxmot, tmp_path / "a.onnx", height=256, width=128)


def test_several_outputs_need_the_embedding_named_and_the_others_are_dropped(tmp_path):
    src = tmp_path / "two.onnx"
    _legacy_export(SmallNet(two_outputs=True).eval(), src, ["feat", "pooled"])
    contract = {"height": H, "width": W, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "color": "rgb"}
    with pytest.raises(ExportError, match=r"2 outputs \(feat \['batch', 24\], pooled \['batch', 16\]\); name the "
                                          "embedding with --embedding-output NAME"):
        adopt_onnx(src, tmp_path / "a.onnx", **contract)
    result = adopt_onnx(src, tmp_path / "a.onnx", embedding_output="pooled", **contract)
    assert [o.name for o in onnx.load(str(result.path)).graph.output] == [EMBEDDING_NAME]
    assert result.info.model["embedding_dim"] == 16 and "outputs other than 'pooled' dropped: feat" in result.notes


def test_a_channels_last_graph_is_refused(tmp_path):
    src = tmp_path / "nhwc.onnx"
    _legacy_export(_ChannelsLast().eval(), src, ["feat"], shape=(1, H, W, 3))
    with pytest.raises(ExportError, match="channels last \\(NHWC\\); the runtimes feed NCHW"):
        adopt_onnx(src, tmp_path / "a.onnx", height=H, width=W, mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb")


def test_bench_on_an_onnx_without_a_contract_says_to_adopt_it(handmade, tiny_market, tmp_path):
    result = _cli("bench", "--data", str(tiny_market), "--model", str(handmade), "--batch-sizes", "1", "--no-stages",
                  "-o", str(tmp_path / "bench"), "-q")
    assert result.returncode == 1
    assert f"reid-export adopt {handmade} -o ADOPTED.onnx --height H" in result.stderr


def test_the_input_itself_is_never_the_output(handmade):
    with pytest.raises(ExportError, match="never modifies the input"):
        adopt_onnx(handmade, handmade, height=H, width=W, mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb")


class _ChannelsLast(nn.Module):
    def forward(self, x):  # (N, H, W, 3) -> (N, 3)
        return x.mean(dim=(1, 2))


def _legacy_export(model: nn.Module, path: Path, outputs: list[str], *, dynamic: bool = True,
                   shape=(1, 3, H, W)) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(*shape),), str(path), input_names=["x"], output_names=outputs,
                          opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in ["x", *outputs]} if dynamic else None)


def _boxmot_export(model: nn.Module, weights: Path) -> Path:
    """`weights.onnx` and its sidecar, written by boxmot's exporter if it is importable, else as it writes them."""
    example = torch.zeros(1, 3, H, W)
    try:
        from boxmot.reid.exporters.backends.onnx import ONNXExporter
    except ImportError:
        path = weights.with_suffix(".onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["output0"],
                              opset_version=18, dynamo=True, verbose=False)
        sidecar = {"schema_version": 1, "format": "onnx", "img_size": None, "model_kwargs": {},
                   "model_kwargs_schema_version": 1, "model_name": None, "num_classes": 1, "preprocess": None,
                   "input_name": "images", "input_shape": [1, 3, H, W], "output_names": ["output0"],
                   "dynamic_batch": False, "precision": "float32", "opset": 18}
        tracker_sidecar_path(path).write_text(json.dumps(sidecar, indent=2, sort_keys=True))
        return path
    return Path(ONNXExporter(model, example, weights, opset=18, dynamic=False, verbose=False).export())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *args], capture_output=True, text=True,
                          timeout=600)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
