"""The training loop, in the shape of the torchvision references: `train_one_epoch`, `evaluate`, `train`.

    result = train(load_recipe("quick", {"data": "data/market", "out": "runs/quick.pt"}))

`train` reads the data (Market-1501 or course layout, `layouts.py`), resolves `attributes`, builds
model, loss, optimizer and learning-rate schedule from a `TrainConfig`, runs one `train_one_epoch`
per epoch, rewrites the checkpoint at `config.out` after each (atomically), and ends with
`evaluate` (`evaluation.py`) on the evaluation split when the data has one, printing a summary
table. With `embedding = "auto"` it first ranks the held-out training ids (`data.validation`) with the
neck output and with the pooled feature, keeps the better by mAP in the model's config, and records
both scores (`val_neck_mAP`, `val_pooled_mAP`, ...) and the held-out ids (`Checkpoint.validation`); the
query/gallery evaluation comes after the choice and never feeds it. The run in progress is one `TrainState`
(model, loss, optimizer, schedule, scaler, loader, the config as run, epoch, metrics, history). `resume=True`
continues from that checkpoint: weights, optimizer, schedule, center-loss
centers, RNG states and the epoch, so the resumed run ends where an uninterrupted one would. On
CUDA out-of-memory the batch halves and the epoch starts over; model and inputs use the
channels-last memory format unless `channels_last = false` (on CUDA and on the CPU, where oneDNN's
convolutions run faster in it).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..checkpoint import Checkpoint, ResumeState, init_model, load_checkpoint, save_checkpoint
from ..errors import CheckpointError, DataError, ReidExportError
from ..evaluation.split import Split
from ..progress import progress_bar
from ..files import check_free_space, check_writable_dir, output_lock
from .config import TrainConfig
from .dataset import ReidDataset
from .distributed import DistributedBatchSampler, all_reduce_mean, process_group, unwrap, wrap_model
from .evaluation import RANK_KEYS, choose_embedding, evaluate, model_embeddings, print_summary
from .layouts import TrainingData, load_training_data, resolve_attributes
from .losses import ReidLoss
from .samplers import PKSampler, RandomBatchSampler
from .transforms import eval_transform, train_transform

__all__ = ["TrainResult", "TrainState", "train", "train_one_epoch", "train_step", "evaluate", "model_embeddings"]


@dataclass
class TrainResult:
    checkpoint: Path  # the checkpoint written last (at config.out)
    metrics: dict  # last epoch's loss / id_acc (%) / images_per_sec, plus rank1, mAP, mINP (%) if evaluated,
    #                and attr_mean_accuracy, attr_mA (%) and attr_per_attribute with attribute heads and test labels
    seconds: float  # wall time of the whole `train` call, data loading and evaluation included
    images_per_sec: float  # training throughput over the epochs run in this call (0 if none ran)


@dataclass
class TrainState:
    """A run in progress, in one object: what an epoch reads and changes, what a checkpoint saves and what
    `--resume` restores. `run` is the config as run: batch_size and p shrink on out-of-memory."""

    model: torch.nn.Module  # DDP-wrapped under torchrun
    criterion: ReidLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # AMP on CUDA only
    dataset: ReidDataset
    labels: list[int]  # training label of every image of `dataset`
    run: TrainConfig
    device: torch.device
    env: object  # the process group (`distributed.process_group`)
    amp: bool = False
    channels_last: bool = False
    scheduler: torch.optim.lr_scheduler.LambdaLR | None = None  # built once the loader's length is known
    loader: DataLoader | None = None
    epoch: int = 0  # epochs done
    metrics: dict = field(default_factory=dict)  # the last epoch's, plus any evaluation since
    history: list[dict] = field(default_factory=list)  # metrics of every epoch done
    validation: dict | None = None  # held-out ids and the embedding choice (the checkpoint's record)


def train(config: TrainConfig, *, resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train as `config` says and write the checkpoint to `config.out`; see the module docstring.
    `config.num_threads` applies for the duration of the call; torch's setting is restored after."""
    device = _device(config.device)
    with _torch_threads(config.num_threads), process_group(device.type) as env, contextlib.ExitStack() as held:
        from rich.console import Console

        started = time.perf_counter()
        device, quiet = env.device(device), quiet or not env.is_main  # rank 0 alone prints
        console = Console(quiet=quiet, highlight=False, soft_wrap=True)
        out = _check_out(config, resume)
        if env.is_main:  # one writer per checkpoint: a second `train --out` of the same file is refused here
            check_writable_dir(out.parent, what=f"--out {out}: folder")
            held.enter_context(output_lock(out, "reid-export train"))
        ckpt = load_checkpoint(out) if resume else None
        amp = config.amp and device.type == "cuda"
        if config.amp and not amp:
            console.print("[yellow]amp is for cuda only; training in float32 on cpu[/]")
        channels_last = config.channels_last and device.type in ("cuda", "cpu")  # oneDNN's convolutions prefer it too
        _seed_everything(config.seed)

        data = load_training_data(config.data, attributes=config.attributes, val_ids=config.val_ids,
                                  hold_out=config.chooses_embedding, progress=not quiet)
        config = config.with_overrides({"attributes": resolve_attributes(config.attributes, data)})
        console.print(_data_line(config, data, device))
        model = init_model(config.model_config(data.num_train_ids), config.init,  # a foreign file: converted,
                           log=print if env.is_main else None).to(device)  # its summary line even with --quiet
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        criterion = ReidLoss(label_smoothing=config.label_smoothing, triplet_weight=config.triplet_weight,
                             margin=config.margin, center_weight=config.center_loss_weight,
                             num_classes=data.num_train_ids, feature_dim=model.config.embedding_dim,
                             center_lr=config.center_lr, attribute_weight=config.attribute_weight).to(device)
        optimizer = _optimizer(config, model)
        if env.is_main:  # weights + optimizer state, written every epoch: fail now, not after the first epoch
            check_free_space(out.parent, 3 * sum(p.numel() * p.element_size() for p in model.parameters()),
                             what=f"checkpoint {out}")
        labels = data.labels
        transform = train_transform(config.preprocess, flip=config.flip, pad_crop=config.pad_crop,
                                    random_erasing=config.random_erasing)
        dataset = ReidDataset(data.train, labels, transform, *(data.attribute_arrays() if config.attributes else ()),
                              cache=config.cache_images)
        eval_codes = data.eval_attributes if config.attributes else None
        state = TrainState(model=model, criterion=criterion, optimizer=optimizer, dataset=dataset, labels=labels,
                           scaler=torch.amp.GradScaler("cuda") if amp else None, run=config, device=device, env=env,
                           amp=amp, channels_last=channels_last)
        if ckpt is not None:
            _resume(ckpt, state, config, out, console)
        start_epoch = state.epoch
        state.model = wrap_model(model, env)  # DDP under torchrun: after the resume, which loads unprefixed weights
        state.loader = _train_loader(dataset, labels, state.run, device, env)
        state.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor_fn(state.run, len(state.loader)))
        if ckpt is not None:
            if ckpt.lr_scheduler:
                state.scheduler.load_state_dict(ckpt.lr_scheduler)
            _place_schedule(state.scheduler, state.run, len(state.loader), start_epoch * len(state.loader))
            _set_rng_state(ckpt.train_state.rng)

        def validate() -> dict:
            split, loader = _eval_split(data.query, data.gallery, state.run, device)
            return evaluate(unwrap(state.model), split, loader, device, attribute_codes=eval_codes,
                            channels_last=channels_last, progress=not quiet)

        images, train_seconds = 0, 0.0
        for epoch in range(start_epoch, config.epochs):
            stats = _global_stats(_epoch_with_oom_retry(state, epoch, quiet, console), env)
            images += stats.pop("images")
            train_seconds += stats["epoch_seconds"]
            state.epoch, state.metrics = epoch + 1, {"epoch": epoch + 1, **stats}
            last = epoch + 1 == config.epochs
            if (data.query is not None and config.eval_every and (epoch + 1) % config.eval_every == 0 and not last
                    and env.is_main):
                state.metrics.update(validate())
            state.history.append(state.metrics)
            console.print(_epoch_line(state.metrics, config.epochs))
            if env.is_main:  # rank 0 alone writes; the others wait for it at the next step's gradient sync
                _save(out, state)

        ran, changed, metrics = start_epoch < config.epochs, False, state.metrics
        if env.is_main and config.chooses_embedding and (ran or "embedding" not in metrics):
            split, loader = _eval_split(data.validation.query, data.validation.gallery, state.run, device)
            choice = choose_embedding(unwrap(state.model), split, loader, device, channels_last=channels_last,
                                      progress=not quiet)
            unwrap(state.model).config.embedding = choice["embedding"]  # what load_model, export and runtimes use
            metrics.update({"embedding": choice["embedding"]}, **{f"val_{name}_{key}": choice[name][key]
                                                                  for name in ("neck", "pooled") for key in RANK_KEYS})
            state.validation = data.validation.record(f"{data.layout} training ids held out") | {"choice": choice}
            console.print(f"embedding: {choice['reason']}")
            changed = True
        if data.query is None:
            console.print("no query/ and bounding_box_test/ folders: skipped the ranking evaluation")
        elif not config.final_eval:
            console.print("final_eval = false: skipped the ranking evaluation (reid-export bench gives it)")
        elif env.is_main and (ran or "rank1" not in metrics):
            metrics.update(validate())
            changed = True
        if changed:
            state.history[-1:] = [metrics]
            _save(out, state)
        print_summary(console, metrics)
        console.print(f"checkpoint: {out}")
        return TrainResult(checkpoint=out, metrics=metrics, seconds=time.perf_counter() - started,
                           images_per_sec=images / train_seconds if train_seconds else 0.0)


def train_one_epoch(model, criterion, optimizer, lr_scheduler, data_loader, device, epoch: int, *,
                    scaler=None, amp: bool = False, channels_last: bool = False, progress: bool = True,
                    total_epochs: int = 0) -> dict:
    """One pass over `data_loader`, stepping `lr_scheduler` after every batch. Returns the epoch's mean
    `loss`, `id_acc` (percent), `images`, `epoch_seconds`, `images_per_sec` and the last `lr`.
    Batches are (images, labels, camids), or with attributes (..., targets, mask)."""
    model.train()
    data_loader.batch_sampler.set_epoch(epoch)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    with progress_bar(f"epoch {epoch + 1}/{total_epochs or '?'}", len(data_loader), enabled=progress,
                      fields={"loss": 0.0, "acc": 0.0, "ips": 0.0},
                      stats="loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.1f}%  {task.fields[ips]:.0f} img/s",
                      ) as advance:
        for step, (images, labels, _, *attributes) in enumerate(data_loader):
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            extra = {}
            if attributes:
                extra = {"attribute_targets": attributes[0].to(device, non_blocking=True),
                         "attribute_mask": attributes[1].to(device, non_blocking=True)}
            loss, logits = train_step(model, criterion, optimizer, images, labels, scaler=scaler, amp=amp, **extra)
            if not math.isfinite(loss):
                raise ReidExportError(f"the training loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                                      "lower lr, raise warmup_epochs, or turn amp off")
            lr_scheduler.step()
            n = images.shape[0]
            loss_sum += loss * n
            correct += int((logits.argmax(1) == labels).sum())
            seen += n
            elapsed = time.perf_counter() - start
            advance(1, loss=loss_sum / seen, acc=100.0 * correct / seen, ips=seen / elapsed)
    seconds = time.perf_counter() - start
    return {"loss": loss_sum / max(seen, 1), "id_acc": 100.0 * correct / max(seen, 1), "images": seen,
            "epoch_seconds": seconds, "images_per_sec": seen / seconds if seconds else 0.0,
            "lr": optimizer.param_groups[0]["lr"]}


def train_step(model, criterion, optimizer, images, labels, *, attribute_targets=None, attribute_mask=None,
               scaler=None, amp: bool = False):
    """Forward, loss, backward and optimizer step on one batch, then the center loss's own update
    (`criterion.update_centers`, when it has one); returns (loss as float, detached ID logits)."""
    with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
        outputs = model(images)
        if attribute_targets is None:
            loss, _ = criterion(outputs, labels)
        else:
            loss, _ = criterion(outputs, labels, attribute_targets, attribute_mask)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    update_centers = getattr(criterion, "update_centers", None)
    if update_centers is not None:
        update_centers(outputs, labels)
    return float(loss.detach()), outputs["logits"].detach()


# -- helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(num_threads: int):
    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_out(config: TrainConfig, resume: bool) -> Path:
    if not config.data:
        raise DataError("training config: data is empty; pass --data DIR, a Market-1501 or course folder to train on")
    out = Path(config.out).expanduser()
    if out.is_dir():
        raise ReidExportError(f"--out {out} is a folder; pass a checkpoint file path such as {out / 'model.pt'}")
    if out.exists() and not resume:
        raise ReidExportError(f"checkpoint {out} already exists; pass --resume to continue that run, or choose "
                              "another --out (training never overwrites a checkpoint)")
    if resume and not out.exists():
        raise ReidExportError(f"--resume: no checkpoint at {out} to continue from; drop --resume to start a new "
                              "run there, or pass the --out of the run to continue")
    return out


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReidExportError("device cuda was asked for but torch sees no CUDA GPU; pass --device cpu or auto")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(config: TrainConfig, model) -> torch.optim.Optimizer:
    """The fused implementation (one kernel over all parameters) where torch has one for the parameters'
    device: on 2 CPU cores the per-parameter for-loop of Adam took a fifth of a ResNet-18 training step."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if params and params[0].device.type in ("cpu", "cuda") else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               **fused)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, **fused)


def _lr_factor_fn(config: TrainConfig, steps_per_epoch: int):
    """lr multiplier at an iteration: the scheduler's shape (cosine after the warm-up; step at the epochs of
    lr_steps, counted from the start), times a linear warm-up ramp from warmup_start to 1 over the first
    warmup_epochs, evaluated per batch."""
    warmup, epochs = config.warmup_epochs, config.epochs

    def factor(step: int) -> float:
        t = step / steps_per_epoch  # epochs done
        if config.scheduler == "cosine":
            progress = min(max((t - warmup) / max(epochs - warmup, 1e-8), 0.0), 1.0)
            value = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif config.scheduler == "step":
            value = config.lr_gamma ** sum(t >= m for m in config.lr_steps)
        else:
            value = 1.0
        if t < warmup:
            ramp = min((step + 1) / (warmup * steps_per_epoch), 1.0)
            value *= config.warmup_start + (1.0 - config.warmup_start) * ramp
        return value

    return factor


def _place_schedule(scheduler, config: TrainConfig, steps_per_epoch: int, step: int) -> None:
    """Point the schedule at iteration `step` for `steps_per_epoch`, and set the optimizer's lr from it."""
    scheduler.lr_lambdas = [_lr_factor_fn(config, steps_per_epoch)] * len(scheduler.lr_lambdas)
    scheduler.last_epoch = step - 1
    with warnings.catch_warnings():  # "step() before optimizer.step()": expected when the first step failed
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()


def _train_loader(dataset, labels, config: TrainConfig, device, env=None) -> DataLoader:
    if config.pk:
        sampler = PKSampler(labels, config.ids_per_batch, config.k, seed=config.seed)
    else:
        sampler = RandomBatchSampler(len(dataset), config.batch_size, seed=config.seed)
    if env is not None and env.distributed:  # every rank draws the same global batches and takes its slice
        sampler = DistributedBatchSampler(sampler, env.rank, env.world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                      persistent_workers=config.num_workers > 0, pin_memory=device.type == "cuda")


def _eval_split(query, gallery, config: TrainConfig, device) -> tuple[Split, DataLoader]:
    """The split to rank and a loader of its images in split order (queries, then gallery)."""
    split = Split.from_samples(query, gallery)
    samples = [*query, *gallery]
    dataset = ReidDataset(samples, [s.pid for s in samples], eval_transform(config.preprocess))
    return split, DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers,
                             pin_memory=device.type == "cuda")


def _epoch_with_oom_retry(state: TrainState, epoch: int, quiet: bool, console) -> dict:
    """Run an epoch and return its stats; on CUDA out-of-memory restore the epoch's start, halve the batch
    (`state.run`, `state.loader`) and run it again (single-process runs only; under torchrun the error ends
    the job)."""
    snapshot = _snapshot(state)
    while True:
        try:
            return train_one_epoch(state.model, state.criterion, state.optimizer, state.scheduler, state.loader,
                                   state.device, epoch, scaler=state.scaler, amp=state.amp,
                                   channels_last=state.channels_last, progress=not quiet,
                                   total_epochs=state.run.epochs)
        except torch.cuda.OutOfMemoryError:
            if state.env is not None and state.env.distributed:  # one rank retrying alone would leave the others
                raise  # waiting
            # handled below, outside the except block, so the failed step's tensors are freed first
        old = state.run.batch_size
        state.run = _halved(state.run)
        console.print(f"[yellow]CUDA out of memory at batch size {old}: retrying epoch {epoch + 1} with "
                      f"batch size {state.run.batch_size}[/]")
        state.loader = None
        if state.device.type == "cuda":
            torch.cuda.empty_cache()
        _restore(snapshot, state)
        state.loader = _train_loader(state.dataset, state.labels, state.run, state.device, state.env)
        _place_schedule(state.scheduler, state.run, len(state.loader), epoch * len(state.loader))


def _global_stats(stats: dict, env) -> dict:
    """An epoch's stats over all ranks: mean loss and accuracy, images and throughput summed."""
    if not env.distributed:
        return stats
    mean = all_reduce_mean({"loss": stats["loss"], "id_acc": stats["id_acc"]}, env)
    return {**stats, **mean, "images": stats["images"] * env.world_size,
            "images_per_sec": stats["images_per_sec"] * env.world_size}


def _halved(run: TrainConfig) -> TrainConfig:
    if run.pk:
        p = run.ids_per_batch // 2
        if p >= (2 if run.triplet_weight > 0 else 1):
            return replace(run, p=p, batch_size=p * run.k)
    elif run.batch_size // 2 >= 1:
        return replace(run, batch_size=run.batch_size // 2)
    raise ReidExportError(
        f"CUDA ran out of memory even at batch size {run.batch_size}; the model does not fit this GPU. "
        "Fix: a smaller --arch, a smaller input (height/width), amp = true, or a GPU with more free memory"
    )


def _snapshot(state: TrainState) -> dict:
    return {"model": _to_cpu(state.model.state_dict()), "optimizer": _to_cpu(state.optimizer.state_dict()),
            "scheduler": copy.deepcopy(state.scheduler.state_dict()),
            "scaler": copy.deepcopy(state.scaler.state_dict()) if state.scaler is not None else None,
            "criterion": _to_cpu(state.criterion.state_dict())}


def _restore(snapshot: dict, state: TrainState) -> None:
    state.model.load_state_dict(snapshot["model"])
    state.optimizer.load_state_dict(copy.deepcopy(snapshot["optimizer"]))
    state.scheduler.load_state_dict(copy.deepcopy(snapshot["scheduler"]))
    if state.scaler is not None:
        state.scaler.load_state_dict(snapshot["scaler"])
    state.criterion.load_state_dict(snapshot["criterion"])


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _save(out: Path, state: TrainState) -> None:
    resume = ResumeState(rng=_rng_state(), sampler_epoch=state.epoch, steps_per_epoch=len(state.loader),
                         history=state.history,
                         scaler=state.scaler.state_dict() if state.scaler is not None else None,
                         criterion=_to_cpu(state.criterion.state_dict()))
    save_checkpoint(out, state.model, epoch=state.epoch, optimizer=state.optimizer, lr_scheduler=state.scheduler,
                    metrics=state.metrics, recipe=state.run.to_dict(), train_state=resume,
                    validation=state.validation)


def _resume(ckpt: Checkpoint, state: TrainState, config: TrainConfig, out: Path, console) -> None:
    """Load what `ckpt` saved into `state` (weights, optimizer, scaler, loss state, the epoch, history, the
    halved batch, the validation record); the schedule and RNG follow once the loader exists."""
    if ckpt.train_state is None or not ckpt.optimizer:
        raise CheckpointError(f"--resume: {out} holds weights but no training state (optimizer, RNG); it was not "
                              "written by `reid-export train`. Start a new run with another --out "
                              "(--init PATH starts from its weights)")
    model = state.model
    expected, saved_config = model.config.to_dict(), ckpt.config
    differ = sorted(k for k in expected if saved_config.get(k) != expected[k] and k != "embedding")
    if differ:
        found = ", ".join(f"{k}={saved_config.get(k)!r}" for k in differ)
        wanted = ", ".join(f"{k}={expected[k]!r}" for k in differ)
        raise CheckpointError(f"--resume: {out} holds a model with {found}, but this config and data give "
                              f"{wanted}; resume with the same recipe and data, or start a new --out")
    model.load_state_dict(ckpt.model)
    model.config.embedding = saved_config.get("embedding", model.config.embedding)  # chosen at the end of the run
    state.optimizer.load_state_dict(ckpt.optimizer)
    saved = ckpt.train_state
    if state.scaler is not None and saved.scaler:
        state.scaler.load_state_dict(saved.scaler)
    if saved.criterion:
        state.criterion.load_state_dict(saved.criterion)
    if ckpt.recipe.get("batch_size", config.batch_size) < config.batch_size:  # halved after an out-of-memory
        state.run = config.with_overrides({"batch_size": ckpt.recipe["batch_size"], "p": ckpt.recipe.get("p", 0)})
    state.epoch, state.history = int(ckpt.epoch), list(saved.history)
    state.metrics = dict(state.history[-1]) if state.history else {}
    state.validation = ckpt.validation  # held-out ids + the embedding choice
    console.print(f"resuming {out} after epoch {state.epoch} of {config.epochs}")


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(state["python"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(obj):
    return tuple(_as_tuples(v) for v in obj) if isinstance(obj, (list, tuple)) else obj


def _epoch_line(metrics: dict, epochs: int) -> str:
    line = (f"epoch {metrics['epoch']}/{epochs}  loss {metrics['loss']:.3f}  id acc {metrics['id_acc']:.1f}%  "
            f"{metrics['images_per_sec']:.0f} img/s  lr {metrics['lr']:.2e}  {metrics['epoch_seconds']:.0f}s")
    if "rank1" in metrics:
        line += f"  rank-1 {metrics['rank1']:.1f}%  mAP {metrics['mAP']:.1f}%"
    if "attr_mA" in metrics:
        line += f"  attr acc {metrics['attr_mean_accuracy']:.1f}%  attr mA {metrics['attr_mA']:.1f}%"
    return line


def _data_line(config: TrainConfig, data: TrainingData, device) -> str:
    arch = config.arch + (f" ({config.base_channels} base channels)" if config.base_channels != 64 else "")
    line = (f"recipe {config.recipe}: {arch} at {config.height}x{config.width} on {device}, {data.layout} "
            f"layout, {len(data.train)} training images of {data.num_train_ids} ids")
    if data.layout == "course" and data.query is not None:
        line += f", {len(data.query)} held-out ids for validation"
    elif config.chooses_embedding and data.validation is not None:
        line += f", {len(data.validation.pids)} more held out to choose the embedding"
    if config.attributes:
        line += f"; attributes from {data.attribute_file.name} for {data.labelled_images} images"
    return line


