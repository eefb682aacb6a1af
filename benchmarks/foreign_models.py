"""One bench report with a row per supported foreign source: torchreid's OSNets and ResNets, built with
torchreid's own model code, and fast-reid BoT / SBS-style models (the test model of tests/models/
fastreid_baseline.py, which follows fast-reid's key layout: PyPI `fastreid` does not install beside this torch),
each with random weights, saved the way its project saves them, then exported to ONNX by `reid-export onnx` and
benched as checkpoint (torch) and ONNX rows on a small synthetic Market-1501.

    python benchmarks/foreign_models.py --out benchmarks/results/foreign-models [--test-ids 12]

Random weights make Rank-1/mAP meaningless; what the report shows is that every source comes in, runs on
every runtime, and that each ONNX row agrees with its own torch row (cos min). Equality with the foreign
projects' own forward passes is what tests/models/ checks (min cosine >= 0.99999).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TORCHREID = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0", "resnet50",
             "resnet50_fc512")
FASTREID = {
    "fastreid_bot_r50": {"MODEL": {"BACKBONE": {"DEPTH": "50x", "LAST_STRIDE": 1, "WITH_IBN": False},
                                   "HEADS": {"WITH_BNNECK": True, "POOL_LAYER": "GlobalAvgPool"}},
                         "INPUT": {"SIZE_TEST": [256, 128]}},
    "fastreid_sbs_r50_ibn_gem": {"MODEL": {"BACKBONE": {"DEPTH": "50x", "LAST_STRIDE": 1, "WITH_IBN": True},
                                           "HEADS": {"WITH_BNNECK": True, "POOL_LAYER": "GeneralizedMeanPoolingP",
                                                     "NECK_FEAT": "after"}},
                                 "INPUT": {"SIZE_TEST": [256, 128]}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-ids", type=int, default=12)
    parser.add_argument("--batch-sizes", default="1,16")
    args = parser.parse_args()
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not data.exists():
        _cli("synth", str(data), "--train-ids", "4", "--test-ids", str(args.test_ids), "--quiet")
    models = [_torchreid(name, work) for name in TORCHREID] + [_fastreid(name, cfg, work) for name, cfg in FASTREID.items()]
    specs = []
    for weights in models:
        onnx = weights.with_suffix(".onnx")
        if not onnx.exists():
            _cli("onnx", str(weights), "-o", str(onnx), "--data", str(data), "--quiet")
        specs += ["--model", f"torch={weights}", "--model", str(onnx)]
    t0 = time.perf_counter()
    _cli("bench", "--data", str(data), *specs, "--batch-sizes", args.batch_sizes, "--no-stages",
         "--out", str(args.out / "bench"), "--overwrite", "--quiet")
    print(f"bench: {time.perf_counter() - t0:.0f} s; report in {args.out / 'bench'}")


def _torchreid(name: str, work: Path) -> Path:
    """A torchreid model with random weights and BN statistics, saved by torchreid's own save_checkpoint."""
    import torchreid  # lazy: the interop extra

    path = work / f"torchreid_{name}.pth.tar"
    if not path.exists():
        torch.manual_seed(0)
        model = torchreid.models.build_model(name, num_classes=751, pretrained=False)
        _randomise_bn(model)
        torchreid.utils.save_checkpoint({"state_dict": model.state_dict(), "epoch": 1, "rank1": 0.0,
                                         "optimizer": None}, str(work / name), is_best=False)
        saved = next((work / name).glob("model.pth.tar-*"))
        saved.rename(path)
    return path


def _fastreid(name: str, config: dict, work: Path) -> Path:
    """A fast-reid-layout model with random weights, saved as fast-reid's Checkpointer does, config.yaml beside."""
    import yaml  # lazy: only this script writes YAML

    sys.path.insert(0, str(ROOT / "tests" / "models"))
    from fastreid_baseline import build_baseline, randomise, save_like_fastreid  # lazy: a test model

    folder = work / name
    path = folder / f"{name}.pth"  # fast-reid names it model_final.pth; one name per model keeps the rows apart
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        save_like_fastreid(randomise(build_baseline(config), seed=1), path)
    return path


def _randomise_bn(model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def _cli(*args: str) -> None:
    print("+ reid-export " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "reid_export.cli", *args], check=True)


if __name__ == "__main__":
    main()
