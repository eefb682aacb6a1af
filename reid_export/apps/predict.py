"""Course-project outputs from any exported model: `reid_test.txt` and `classification_test.csv`.

    predict_course("course_data/", "engines/model.onnx", "out/")

Queries (`queries/`) are ranked against the anonymised gallery (`test/`) by cosine distance through
the chosen runtime; when the model has attribute outputs, every test image also gets its 27 codes.
"""

from __future__ import annotations

from pathlib import Path

from ..data.attributes import decode_probabilities
from ..data.course import load_course, write_attribute_predictions, write_reid_ranking
from ..errors import ReidExportError
from ..evaluation.distances import topk
from ..files import check_writable_dir
from ..images import decode_images
from ..runtimes import infer_images, make_runtime, parse_model_spec

__all__ = ["predict_course", "RANKING_FILE", "ATTRIBUTES_FILE"]

RANKING_FILE = "reid_test.txt"
ATTRIBUTES_FILE = "classification_test.csv"


def predict_course(data_root: str | Path, model_spec: str, out_dir: str | Path, *, top_k: int = 100,
                   batch_size: int = 64, progress: bool = True) -> list[Path]:
    """Write the course's submission files into `out_dir`; returns the files written. Existing files of
    those names are never replaced."""
    out = Path(out_dir)
    clashes = [out / name for name in (RANKING_FILE, ATTRIBUTES_FILE) if (out / name).exists()]
    if clashes:
        raise ReidExportError(f"{clashes[0]} already exists; predict never replaces outputs: choose another -o folder "
                              "or move the old files away")
    check_writable_dir(out, what="-o folder")  # before any image is embedded
    data = load_course(data_root, progress=progress)
    name, path = parse_model_spec(model_spec)
    with make_runtime(name, path) as runtime:
        queries = infer_images(runtime, decode_images(data.queries, runtime.contract, progress=progress),
                               batch_size=batch_size, progress=progress, description="queries")
        gallery = infer_images(runtime, decode_images(data.test, runtime.contract, progress=progress),
                               batch_size=batch_size, progress=progress, description="test images")
    k = min(top_k, len(data.test))
    order, _ = topk(queries["embedding"], gallery["embedding"], k=k, metric="cosine")
    out.mkdir(parents=True, exist_ok=True)
    written = [write_reid_ranking(out / RANKING_FILE, data.queries, [[data.test[j] for j in row] for row in order],
                                  top_k=k)]
    if "attributes" in gallery:
        codes = decode_probabilities(gallery["attributes"])
        written.append(write_attribute_predictions(out / ATTRIBUTES_FILE, data.test, codes))
    return written
