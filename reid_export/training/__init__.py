"""Training: recipes, losses, samplers, transforms and the loop that writes a reid-export checkpoint.

    from reid_export.training import load_recipe, train
    result = train(load_recipe("quick", {"data": "data/market", "out": "runs/quick.pt"}))
    result.metrics["rank1"], result.checkpoint
"""

from .config import TrainConfig, available_recipes, load_recipe, recipe_dir
from .dataset import ReidDataset
from .losses import ReidLoss, batch_hard_triplet_loss, label_smoothing_cross_entropy
from .loop import TrainResult, evaluate, extract_embeddings, train, train_one_epoch, train_step
from .samplers import PKSampler, RandomBatchSampler
from .transforms import EvalTransform, TrainTransform, eval_transform, train_transform

__all__ = [
    "TrainConfig", "load_recipe", "available_recipes", "recipe_dir",
    "train", "TrainResult", "train_one_epoch", "train_step", "evaluate", "extract_embeddings",
    "ReidLoss", "label_smoothing_cross_entropy", "batch_hard_triplet_loss",
    "PKSampler", "RandomBatchSampler", "ReidDataset",
    "TrainTransform", "EvalTransform", "train_transform", "eval_transform",
]
