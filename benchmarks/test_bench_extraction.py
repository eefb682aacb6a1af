"""Model-only extraction throughput per runtime at batch 32: ResNet50 at 256x128, the deployment size.

    pytest benchmarks/test_bench_extraction.py --benchmark-only

Weights are random (speed does not depend on them); inputs are pre-normalised tensors; every runtime
gets warm-up calls before timing. Compare runs with --benchmark-save NAME / --benchmark-compare.
"""

import numpy as np
import pytest

from reid_export.contract import Preprocess
from reid_export.errors import RuntimeUnavailable
from reid_export.model import ModelConfig, ReidNet
from reid_export.runtimes import make_runtime

BATCH = 32
CONTRACT = Preprocess(height=256, width=128)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    from reid_export.checkpoint import save_checkpoint
    from reid_export.export.onnx import export_onnx

    folder = tmp_path_factory.mktemp("bench-models")
    model = ReidNet(ModelConfig(arch="resnet50", neck="bnneck", preprocess=CONTRACT)).eval()
    return {
        "torch": save_checkpoint(folder / "resnet50.pt", model, epoch=0),
        "onnxruntime": export_onnx(model, folder / "resnet50.onnx"),
    }


@pytest.mark.parametrize("runtime_name", ["torch", "onnxruntime", "torch-cuda", "onnxruntime-cuda"])
def test_extraction_batch32(benchmark, artefacts, runtime_name):
    artefact = artefacts[runtime_name.split("-")[0]]
    batch = np.random.default_rng(0).standard_normal((BATCH, *CONTRACT.input_shape), dtype=np.float32)
    runtime = make_runtime(runtime_name, artefact)
    try:
        runtime.activate()
    except RuntimeUnavailable as e:
        pytest.skip(str(e))
    with runtime:
        for _ in range(2):  # warm-up: allocator, kernels, thread pools
            runtime.infer(batch)
        benchmark.extra_info.update(runtime=runtime_name, provider=runtime.provider, batch=BATCH)
        out = benchmark.pedantic(runtime.infer, args=(batch,), rounds=5, iterations=1)
        benchmark.extra_info["images_per_sec"] = BATCH / benchmark.stats.stats.median
    assert out["embedding"].shape == (BATCH, 2048)
