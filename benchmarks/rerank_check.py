"""Re-ranked metrics on a demo model's own embeddings: reid_export's blockwise k-reciprocal re-ranking
next to the test suite's independent dense formulation of the reference conventions (k1=20, k2=6,
lambda 0.3). The two should agree within 0.01 points.

    python benchmarks/rerank_check.py runs/demo-<time>    # a demo folder (model.onnx, data/)
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "evaluation"), str(ROOT / "tests")]
from test_rerank import _dense_reference  # noqa: E402  (the tests' dense formulation)

from reid_export.data.market1501 import load_market1501
from reid_export.evaluation.protocol import evaluate_ranking
from reid_export.evaluation.rerank import k_reciprocal_rerank
from reid_export.evaluation.embeddings import evaluate_embeddings
from reid_export.images import decode_images
from reid_export.runtimes import infer_images, make_runtime

D = sys.argv[1]
data = load_market1501(f"{D}/data", splits=("query", "gallery"), progress=False)
with make_runtime("onnxruntime", f"{D}/model.onnx") as rt:
    q = infer_images(rt, decode_images([s.path for s in data.query], rt.contract, progress=False), progress=False)["embedding"]
    g = infer_images(rt, decode_images([s.path for s in data.gallery], rt.contract, progress=False), progress=False)["embedding"]
ids = [np.array([s.pid for s in data.query]), np.array([s.pid for s in data.gallery]),
       np.array([s.camid for s in data.query]), np.array([s.camid for s in data.gallery])]
plain = evaluate_embeddings(q, g, *ids)
ours = evaluate_ranking(k_reciprocal_rerank(q, g), *ids)
ref = evaluate_ranking(_dense_reference(q, g), *ids)
for name, m in (("no re-ranking", plain), ("reid_export.rerank", ours), ("dense reference conventions", ref)):
    print(f"{name:30s} Rank-1 {m['rank1']:.2f}  mAP {m['mAP']:.2f}  mINP {m['mINP']:.2f}")
print(f"difference: Rank-1 {ours['rank1'] - ref['rank1']:+.3f}, mAP {ours['mAP'] - ref['mAP']:+.3f}")
