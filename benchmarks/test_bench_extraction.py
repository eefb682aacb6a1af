"""Model-only extraction throughput per runtime x precision x batch: ResNet50 at 256x128 (the deployment size).

    pytest benchmarks/test_bench_extraction.py --benchmark-only
    pytest benchmarks/ --benchmark-only --benchmark-save=NAME      # later: --benchmark-compare=NAME

Weights are random (speed does not depend on them); inputs are pre-normalised tensors; every runtime
gets warm-up calls before timing. INT8 is calibrated on a small synthetic training split. Runtimes
that cannot run here (no GPU, TensorRT missing) skip with the reason.
"""

import numpy as np
import pytest

from reid_export.contract import Preprocess
from reid_export.errors import RuntimeUnavailable
from reid_export.models import ModelConfig, ReidNet
from reid_export.runtimes import make_runtime

CONTRACT = Preprocess(height=256, width=128)
CASES = [  # (runtime, precision)
    ("torch", "fp32"), ("torch-cuda", "fp32"), ("torch-cuda-fp16", "fp16"),
    ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"),
    ("onnxruntime-cuda", "fp32"), ("onnxruntime-cuda", "fp16"), ("onnxruntime-trt", "fp32"),
]


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    from reid_export.checkpoint import save_checkpoint
    from reid_export.data.synthetic import generate_market1501
    from reid_export.export.precision import export_at_precision

    folder = tmp_path_factory.mktemp("bench-models")
    data = generate_market1501(folder / "calib", train_ids=8, test_ids=2, distractors=0, junk=0, progress=False).out_dir
    model = ReidNet(ModelConfig(arch="resnet50", neck="bnneck", preprocess=CONTRACT)).eval()
    made = {"pt": save_checkpoint(folder / "resnet50.pt", model, epoch=0)}
    for precision in ("fp32", "fp16", "int8"):
        made[precision] = export_at_precision(model, folder / f"resnet50.{precision}.onnx", precision=precision,
                                              calib_data=data, progress=False)
    return made


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("runtime_name,precision", CASES)
def test_extraction(benchmark, artefacts, runtime_name, precision, batch):
    artefact = artefacts["pt"] if runtime_name.startswith("torch") else artefacts[precision]
    x = np.random.default_rng(0).standard_normal((batch, *CONTRACT.input_shape), dtype=np.float32)
    runtime = make_runtime(runtime_name, artefact)
    try:
        runtime.activate()
    except RuntimeUnavailable as e:
        pytest.skip(str(e))
    with runtime:
        for _ in range(2):  # warm-up: allocator, kernels, thread pools
            runtime.infer(x)
        benchmark.extra_info.update(runtime=runtime_name, precision=runtime.precision, provider=runtime.provider,
                                    batch=batch)
        out = benchmark.pedantic(runtime.infer, args=(x,), rounds=5 if batch > 1 else 20, iterations=1)
        benchmark.extra_info["images_per_sec"] = round(batch / benchmark.stats.stats.median, 2)
    assert out["embedding"].shape == (batch, 2048)
