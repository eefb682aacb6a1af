"""Training: recipes, losses, samplers, transforms and the loop that writes a reid-export checkpoint.

    from reid_export.training import load_recipe, train
    result = train(load_recipe("quick", {"data": "data/market", "out": "runs/quick.pt"}))
    result.metrics["rank1"], result.checkpoint

`--data` may be a Market-1501 folder or a course folder (`layouts.py`); `attributes = true` (or
"auto") trains the 27 attribute heads alongside identity.
"""

from .config import TrainConfig, available_recipes, load_recipe, recipe_dir
from .dataset import ReidDataset
from .evaluation import evaluate, extract_outputs, model_embeddings, print_summary, summary_tables
from .layouts import TrainingData, detect_layout, load_training_data, resolve_attributes
from .loop import TrainResult, train, train_one_epoch, train_step
from .losses import CenterLoss, ReidLoss, attribute_loss, batch_hard_triplet_loss, label_smoothing_cross_entropy
from .samplers import PKSampler, RandomBatchSampler
from .transforms import EvalTransform, TrainTransform, eval_transform, train_transform

__all__ = [
    "TrainConfig", "load_recipe", "available_recipes", "recipe_dir",
    "train", "TrainResult", "train_one_epoch", "train_step",
    "evaluate", "model_embeddings", "extract_outputs", "summary_tables", "print_summary",
    "TrainingData", "detect_layout", "load_training_data", "resolve_attributes",
    "ReidLoss", "CenterLoss", "label_smoothing_cross_entropy", "batch_hard_triplet_loss", "attribute_loss",
    "PKSampler", "RandomBatchSampler", "ReidDataset",
    "TrainTransform", "EvalTransform", "train_transform", "eval_transform",
]
