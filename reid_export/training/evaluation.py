"""Evaluation of a model in training: ranking a split, attribute scores, the final summary tables.

    split, loader = Split.from_market(data), <a DataLoader over split.paths' samples, in split order>
    metrics = evaluate(model, split, loader, device, attribute_codes={pid: codes})
    metrics["rank1"], metrics["mAP"], metrics["attr_mean_accuracy"], metrics["attr_mA"]   # percent
    choice = choose_embedding(model, validation_split, loader, device)   # "neck" or "pooled"
    print_summary(console, metrics)

The model embeds the split's images; `evaluation.split.evaluate` ranks them (Market-1501 protocol, cosine
distances) and scores the attributes over the images whose person has labels (junk and distractors never
do): the predicted codes are the exported model's decoding, a softmax argmax for age, sigmoid >= 0.5 for the
yes/no attributes and the argmax colour per body half. Rankings use the embedding the model is set to
(`config.embedding`); `choose_embedding` ranks both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..evaluation.split import RANK_KEYS, Split
from ..evaluation.split import evaluate as evaluate_split
from ..models import attribute_probabilities
from ..progress import progress_bar

__all__ = ["RANK_KEYS", "extract_outputs", "model_embeddings", "evaluate", "choose_embedding", "summary_tables",
           "print_summary"]


@torch.no_grad()
def extract_outputs(model, data_loader, device, *, channels_last: bool = False, progress: bool = False) -> dict:
    """Eval-mode outputs of every image: {"embedding": float32 (N, dim), the one `config.embedding` names,
    "neck" and "pooled" (both candidates), "attributes": float32 (N, 30) logits (attribute models only),
    "pids": (N,), "camids": (N,)}."""
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    outputs: dict[str, list] = {"neck": [], "pooled": [], "attributes": [], "pids": [], "camids": []}
    with progress_bar("embedding", len(data_loader), enabled=progress) as advance:  # a log file: plain lines
        for images, pids, camids, *_ in data_loader:
            out = model(images.to(device, memory_format=memory_format))
            outputs["neck"].append(out["embedding"].float().cpu())
            outputs["pooled"].append(out["features"].float().cpu())
            if "attributes" in out:
                outputs["attributes"].append(out["attributes"].float().cpu())
            outputs["pids"].append(pids)
            outputs["camids"].append(camids)
            advance()
    result = {key: torch.cat(values).numpy() for key, values in outputs.items() if values}
    result["embedding"] = result[getattr(getattr(model, "config", None), "embedding", "neck")]
    return result


def model_embeddings(model, data_loader, device, *, progress: bool = False):
    """Eval-mode embeddings of every image: (float32 array (N, dim), labels (N,), camids (N,))."""
    out = extract_outputs(model, data_loader, device, progress=progress)
    return out["embedding"], out["pids"], out["camids"]


def evaluate(model, split: Split, loader, device, *, attribute_codes: dict | None = None,
             channels_last: bool = False, progress: bool = False) -> dict:
    """Rank the gallery of `split` for every query by cosine distance (Market-1501 protocol); percent values.
    `loader` yields the split's images in split order (queries, then gallery).

    With `attribute_codes` ({pid: 27 codes}) and an attribute model, also `attr_mean_accuracy` (the
    official 12 columns), `attr_mA` and `attr_per_attribute` ({name: {"accuracy", "mA", "f1"}})."""
    outputs = _split_outputs(model, split, loader, device, channels_last=channels_last, progress=progress)
    if attribute_codes and "attributes" in outputs:
        probabilities = attribute_probabilities(torch.from_numpy(outputs["attributes"])).numpy()
        result = evaluate_split({"embedding": outputs["embedding"], "attributes": probabilities}, split,
                                attribute_truth=attribute_codes)
    else:
        result = evaluate_split(outputs["embedding"], split)
    metrics: dict = result.ranking()
    if result.attributes is not None:
        metrics.update(attr_mean_accuracy=result.attributes.mean_accuracy, attr_mA=result.attributes.mA,
                       attr_per_attribute=result.attributes.per_attribute, attr_images=result.attributes.num_images)
    return metrics


def choose_embedding(model, split: Split, loader, device, *, channels_last: bool = False,
                     progress: bool = False) -> dict:
    """Rank a validation split (held-out training ids, never the test set; `loader` yields its images in split
    order) with the neck output and with the pooled feature; the better mAP wins (a tie keeps the neck).
    Returns {"embedding": "neck" | "pooled", "neck": {rank1, mAP, ...}, "pooled": {...}, "reason": one line}."""
    outputs = _split_outputs(model, split, loader, device, channels_last=channels_last, progress=progress)
    scores = {name: evaluate_split(outputs[name], split).ranking() for name in ("neck", "pooled")}
    chosen = "pooled" if scores["pooled"]["mAP"] > scores["neck"]["mAP"] else "neck"
    other = "neck" if chosen == "pooled" else "pooled"
    reason = (f"{chosen}: validation mAP {scores[chosen]['mAP']:.2f} vs {scores[other]['mAP']:.2f} for {other} "
              f"(Rank-1 {scores[chosen]['rank1']:.2f} vs {scores[other]['rank1']:.2f}) on "
              f"{len(np.unique(split.query.pids))} held-out training ids, {split.num_query} queries, "
              f"{split.num_gallery} gallery")
    return {"embedding": chosen, "neck": scores["neck"], "pooled": scores["pooled"], "reason": reason}


def summary_tables(metrics: dict) -> list:
    """rich Tables: ranking (Rank-1/5/10, mAP, mINP) and, with attribute scores, one row per attribute."""
    from rich.table import Table

    tables = []
    if "val_neck_mAP" in metrics:
        choice = Table(title=f"Embedding choice on held-out training ids: {metrics.get('embedding', '?')}")
        for name in ("embedding", "Rank-1 %", "mAP %", "mINP %"):
            choice.add_column(name, justify="right")
        for name in ("neck", "pooled"):
            choice.add_row(name + (" (chosen)" if metrics.get("embedding") == name else ""),
                           *(_pct(metrics[f"val_{name}_{key}"]) for key in ("rank1", "mAP", "mINP")))
        tables.append(choice)
    if "rank1" in metrics:
        ranking = Table(title="Re-identification (query vs gallery)")
        for name in ("Rank-1 %", "Rank-5 %", "Rank-10 %", "mAP %", "mINP %"):
            ranking.add_column(name, justify="right")
        ranking.add_row(*(_pct(metrics[key]) for key in RANK_KEYS))
        tables.append(ranking)
    if "attr_per_attribute" in metrics:
        attrs = Table(title=f"Attributes ({metrics.get('attr_images', '?')} query + gallery images with labels)")
        attrs.add_column("attribute")
        for name in ("accuracy %", "mA %", "F1 %"):
            attrs.add_column(name, justify="right")
        for name, scores in metrics["attr_per_attribute"].items():
            attrs.add_row(name, _pct(scores["accuracy"]), _pct(scores["mA"]), _pct(scores["f1"]))
        attrs.add_section()
        attrs.add_row("mean accuracy, official 12 columns", _pct(metrics["attr_mean_accuracy"]), "", "")
        attrs.add_row("mA, mean of the 27", "", _pct(metrics["attr_mA"]), "")
        tables.append(attrs)
    return tables


def print_summary(console, metrics: dict) -> None:
    """Print `summary_tables(metrics)` on a rich Console."""
    for table in summary_tables(metrics):
        console.print(table)


# -- helpers ---------------------------------------------------------------------------------------


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _split_outputs(model, split: Split, loader, device, **options) -> dict:
    """`extract_outputs` of `loader`, checked to be the images of `split` in its order."""
    outputs = extract_outputs(model, loader, device, **options)
    if not (np.array_equal(outputs["pids"], split.pids) and np.array_equal(outputs["camids"], split.camids)):
        raise ValueError(f"the evaluation loader gave {len(outputs['pids'])} images whose person/camera ids differ "
                         f"from the split's {len(split.paths)}; build it over the split's samples, queries first")
    return outputs
