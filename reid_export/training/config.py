"""The training configuration: one dataclass, filled from a recipe file and then from overrides.

    config = load_recipe("quick", {"data": "data/market", "out": "runs/quick.pt", "epochs": 3})

`attributes` takes true, false or "auto": "auto" turns the attribute heads on when the data set has
attribute labels (market_attribute.mat in the Market layout, annotations_train.csv in the course
layout) and off otherwise. `train` resolves it before building the model and records the resolved
true/false in the checkpoint's `recipe`, so a checkpoint always says what was trained.

`embedding` takes "neck", "pooled" or "auto": which feature the model ranks with and export writes,
the BNNeck's output or the pooled feature before it. "auto" holds `val_ids` training identities out
of training (the course layout always does), evaluates both features on them after the last epoch
and keeps the better by mAP; query/ and bounding_box_test/ are never used for the choice. The
checkpoint records the choice (`config.embedding`), both scores and the held-out ids.

A recipe is a flat TOML file in the repository's `train/` folder (`train/quick.toml` is the recipe
"quick"); a path to any .toml file works too. Keys are the field names below. Unknown keys, in the
file or in the overrides, are errors that list the valid ones. Defaults are the seed recipe's.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..contract import Preprocess
from ..errors import ReidExportError
from ..models import ARCHS, EMBEDDINGS, ModelConfig

__all__ = ["TrainConfig", "load_recipe", "available_recipes", "recipe_dir"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")
NECKS = ("none", "bnneck")
EMBEDDING_CHOICES = ("auto", *EMBEDDINGS)


@dataclass
class TrainConfig:
    recipe: str = "custom"  # recipe name; recorded in the checkpoint with the rest of this config
    data: str = ""  # Market-1501 folder (bounding_box_train/, query/, ...) or course folder (train/, queries/, ...)
    out: str = "runs/reid.pt"  # checkpoint path, rewritten atomically at the end of every epoch
    arch: str = "resnet50"  # backbone, one of model.ARCHS
    base_channels: int = 64  # ResNet: channels of the stem and first stage, doubled per stage; 64 standard, 32 half as wide
    init: str = "random"  # "random", "imagenet" (downloads torchvision weights) or a path to ResNet weights
    height: int = 128  # input height in pixels; becomes the model's preprocessing contract
    width: int = 64  # input width in pixels; becomes the model's preprocessing contract
    neck: str = "none"  # "none": embedding = pooled feature; "bnneck": BatchNorm after pooling
    last_stride: int = 2  # stride of the last ResNet stage; 1 doubles the final feature map
    zero_init_residual: bool = False  # start every residual block as identity (last BN weight = 0)
    epochs: int = 10  # passes over the training split
    batch_size: int = 32  # images per training batch (= p * k with P x K sampling) and per eval batch
    p: int = 0  # identities per batch with P x K sampling; 0 = batch_size // k
    k: int = 0  # images per identity with P x K sampling; 0 = plain random batches
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 0.0  # L2 penalty (adam, sgd) or decoupled decay (adamw)
    momentum: float = 0.9  # sgd momentum; ignored by adam and adamw
    scheduler: str = "constant"  # learning-rate shape after warm-up: "cosine", "step" or "constant"
    warmup_epochs: float = 0.0  # linear warm-up to lr over this many epochs, per iteration
    warmup_start: float = 0.0  # lr factor the warm-up starts from (BoT: 0.1); 0 = from ~0
    lr_steps: list[int] = field(default_factory=list)  # "step" scheduler: epochs at which lr *= lr_gamma
    lr_gamma: float = 0.1  # "step" scheduler: decay factor at each of lr_steps
    label_smoothing: float = 0.0  # epsilon of label-smoothed cross-entropy on the ID logits; 0 = plain CE
    triplet_weight: float = 0.0  # weight of the batch-hard triplet loss on the pooled features; 0 = off
    margin: float = 0.3  # triplet hinge margin; 0 = soft margin, log(1 + exp(d_ap - d_an))
    center_loss_weight: float = 0.0  # weight of the center loss on the pooled features (BoT: 5e-4); 0 = off
    center_lr: float = 0.5  # center loss: SGD step size of the class centers' own update (BoT: 0.5)
    attributes: bool | str = False  # attribute heads: true, false or "auto" (on when the data has labels)
    attribute_weight: float = 1.0  # weight of the attribute loss in the joint loss
    embedding: str = "neck"  # exported/ranked feature: "neck", "pooled", or "auto" (the better on validation ids)
    val_ids: int = 100  # ids held out of training for validation (the last by pid): course layout always,
    #                     Market layout when embedding = "auto" picks the embedding on them
    flip: bool = False  # random horizontal flip (p = 0.5)
    pad_crop: bool = False  # pad 10 px, then crop back to height x width at a random offset
    random_erasing: bool = False  # erase a random rectangle (p = 0.5) with the mean colour
    num_workers: int = 2  # data-loading processes; 0 loads in the training process
    cache_images: bool = False  # decode and resize each training image once and keep it in memory (uint8,
    #                             24 KB per image at 128x64); augmentation still runs per epoch
    num_threads: int = 0  # torch CPU threads (torch.set_num_threads); 0 = leave torch's default
    seed: int = 0  # seeds init, sampling and augmentation: same seed, same run on CPU
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    amp: bool = False  # mixed precision (float16 autocast + grad scaling); cuda only, ignored on cpu
    channels_last: bool = True  # channels-last memory format for model and inputs (cuda and cpu)
    eval_every: int = 0  # evaluate on query/gallery every N epochs; 0 = only after the last epoch
    final_eval: bool = True  # evaluate on query/gallery after the last epoch (the demo's bench does it instead)

    def __post_init__(self) -> None:
        self._coerce_types()
        self._validate()

    @property
    def pk(self) -> bool:
        """Whether batches are drawn P identities x K images (else plain random batches)."""
        return self.k > 0

    @property
    def ids_per_batch(self) -> int:
        """P of P x K sampling (0 with random batches)."""
        if not self.pk:
            return 0
        return self.p or self.batch_size // self.k

    @property
    def chooses_embedding(self) -> bool:
        """Whether training ends by picking neck vs pooled on validation ids (with no neck they are the same)."""
        return self.embedding == "auto" and self.neck != "none"

    @property
    def preprocess(self) -> Preprocess:
        """The input contract the model is trained with and exported with."""
        return Preprocess(height=self.height, width=self.width)

    def model_config(self, num_classes: int) -> ModelConfig:
        """The model this config trains. `attributes = "auto"` must be resolved first (`train` does)."""
        if self.attributes == "auto":
            raise ReidExportError('training config: attributes = "auto" is resolved against the data before the '
                                  "model is built; call config.with_overrides({'attributes': True or False}) first")
        return ModelConfig(
            arch=self.arch, base_channels=self.base_channels, num_classes=num_classes, neck=self.neck,
            last_stride=self.last_stride,
            zero_init_residual=self.zero_init_residual, attributes=self.attributes, preprocess=self.preprocess,
            embedding="neck" if self.embedding == "auto" else self.embedding,  # "auto": decided after training
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict | None, *, source: str = "overrides") -> "TrainConfig":
        """A copy with `overrides` applied. None values are skipped (CLI options not given), and
        dashes in keys read as underscores (`batch-size`). Overriding `batch_size` of a P x K recipe
        without also giving `p` re-derives P as batch_size // k."""
        clean = _clean_keys(overrides or {}, source=source)
        if "batch_size" in clean and "p" not in clean and self.pk:
            clean["p"] = 0
        return replace(self, **clean)

    # -- checks --------------------------------------------------------------------------------
    def _coerce_types(self) -> None:
        for f in fields(self):
            value, default = getattr(self, f.name), _default(f)
            if f.name == "attributes":
                self.attributes = _bool_or_auto(value)
                continue
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            elif isinstance(default, list):
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                )
                value = list(value) if ok else value
            else:
                value = str(value) if isinstance(value, Path) else value
                ok = isinstance(value, str)
            if not ok:
                expected = "a list of integers" if isinstance(default, list) else type(default).__name__
                raise ReidExportError(
                    f"training config: {f.name} must be {expected}, found {value!r} "
                    f"({type(value).__name__}). Fix: e.g. {f.name} = {default!r}"
                )
            setattr(self, f.name, value)

    def _validate(self) -> None:
        _one_of("arch", self.arch, tuple(ARCHS))
        _one_of("neck", self.neck, NECKS)
        _one_of("embedding", self.embedding, EMBEDDING_CHOICES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("scheduler", self.scheduler, SCHEDULERS)
        _one_of("device", self.device, DEVICES)
        _one_of("last_stride", self.last_stride, (1, 2))
        for name in ("epochs", "batch_size", "height", "width", "val_ids"):
            if getattr(self, name) < 1:
                _fail(f"{name} must be at least 1, found {getattr(self, name)}")
        for name in ("p", "k", "num_workers", "num_threads", "eval_every", "weight_decay", "warmup_epochs",
                     "triplet_weight", "margin", "momentum", "center_loss_weight", "attribute_weight"):
            if getattr(self, name) < 0:
                _fail(f"{name} must not be negative, found {getattr(self, name)}")
        try:  # the model's own rules for its width (ModelConfig owns them), checked before any data is read
            ModelConfig(arch=self.arch, base_channels=self.base_channels)
        except ReidExportError as e:
            _fail(str(e))
        if not (self.lr > 0 and math.isfinite(self.lr)):
            _fail(f"lr must be a positive number, found {self.lr}")
        if not (self.center_lr > 0 and math.isfinite(self.center_lr)):
            _fail(f"center_lr must be a positive number, found {self.center_lr}")
        if not 0 <= self.warmup_start <= 1:
            _fail(f"warmup_start must be in [0, 1], found {self.warmup_start}")
        if not 0 <= self.label_smoothing < 1:
            _fail(f"label_smoothing must be in [0, 1), found {self.label_smoothing}")
        if self.pk:
            if self.p and self.p * self.k != self.batch_size:
                _fail(f"batch_size {self.batch_size} is not p * k = {self.p} * {self.k}; set batch_size = "
                      f"{self.p * self.k}, or p = 0 to derive P from batch_size")
            if self.ids_per_batch < (2 if self.triplet_weight > 0 else 1):
                _fail(f"P x K batches of {self.batch_size} images with k = {self.k} leave "
                      f"{self.ids_per_batch} identities per batch; the triplet loss needs at least 2. "
                      f"Raise batch_size to at least {2 * self.k} or lower k")
        if self.triplet_weight > 0 and self.k < 2:
            _fail(f"the triplet loss (triplet_weight = {self.triplet_weight}) needs P x K batches with "
                  f"k >= 2 images per identity, found k = {self.k}; set k = 4 or triplet_weight = 0")


def recipe_dir() -> Path:
    """Where the named recipes live: the repository's top-level `train/` folder, installed with the package
    as `reid_export.recipes` (the same files in an editable and in a wheel install)."""
    from importlib import resources

    try:
        return Path(str(resources.files("reid_export.recipes")))
    except ModuleNotFoundError:  # a source tree used without installing: the folder next to the package
        return Path(__file__).resolve().parents[2] / "train"


def available_recipes() -> list[str]:
    """Names of the recipes in `recipe_dir()`."""
    folder = recipe_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_recipe(name_or_path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a recipe (a name in `train/` or a path to a .toml file) and apply `overrides`. A recipe may start
    from another (`base = "quick"`: a named recipe or a .toml path) and give only what differs."""
    path = _recipe_path(name_or_path)
    values = _recipe_values(path, chain=())
    values.setdefault("recipe", path.stem)
    config = TrainConfig(**values)
    return config.with_overrides(overrides)


# -- helpers ---------------------------------------------------------------------------------------


def _recipe_values(path: Path, chain: tuple[Path, ...]) -> dict:
    """A recipe file's settings on top of those of its `base`, if it names one."""
    import tomllib

    if path.resolve() in chain:
        raise ReidExportError(f"recipe {path}: its `base` chain comes back to itself "
                              f"({' -> '.join(p.name for p in (*chain, path.resolve()))}); remove one `base` line")
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ReidExportError(f"recipe {path} is not valid TOML ({e}); fix the line it names") from e
    nested = [key for key, value in values.items() if isinstance(value, dict)]
    if nested:
        raise ReidExportError(f"recipe {path}: expected flat `key = value` lines, found table(s) {nested}; "
                              "remove the [section] headers")
    base = values.pop("base", None)
    values = _clean_keys(values, source=f"recipe {path}")
    if base is None:
        return values
    if not isinstance(base, str):
        raise ReidExportError(f"recipe {path}: base must be a recipe name or a .toml path, found {base!r}")
    relative = base.endswith(".toml") and not Path(base).expanduser().is_absolute()
    inherited = _recipe_values(_recipe_path(path.parent / base if relative else base), (*chain, path.resolve()))
    inherited.pop("recipe", None)  # the name is this file's own
    return inherited | values


def _recipe_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ReidExportError(f"recipe file {path} does not exist; pass an existing .toml file or one of "
                                  f"the named recipes: {', '.join(available_recipes()) or 'none found'}")
        return path
    path = recipe_dir() / f"{text}.toml"
    if not path.is_file():
        raise ReidExportError(f"unknown recipe {text!r}; choose one of {', '.join(available_recipes()) or '(none)'} "
                              f"(files in {recipe_dir()}) or pass a path to a .toml file")
    return path


def _clean_keys(values: dict, *, source: str) -> dict:
    known = [f.name for f in fields(TrainConfig)]
    clean = {str(k).replace("-", "_"): v for k, v in values.items() if v is not None}
    unknown = sorted(k for k in clean if k not in known)
    if unknown:
        raise ReidExportError(f"{source}: unknown training setting(s) {unknown}; valid keys are: "
                              f"{', '.join(known)}")
    return clean


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _bool_or_auto(value) -> bool | str:
    """true / false / "auto"; the strings "true", "false", "auto" (any case) too, as `--set` gives them."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in ("true", "false", "auto"):
        return {"true": True, "false": False}.get(text, "auto")
    raise ReidExportError(f'training config: attributes must be true, false or "auto", found {value!r} '
                          f'({type(value).__name__}). Fix: e.g. attributes = "auto"')


def _one_of(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        _fail(f"unknown {name} {value!r}; choose one of {', '.join(map(str, allowed))}")


def _fail(message: str):
    raise ReidExportError(f"training config: {message}")
