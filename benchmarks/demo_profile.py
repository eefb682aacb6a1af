"""Where the demo's training time goes: decoding and augmentation, the loader, forward, backward, optimizer,
checkpoint writes and the validation pass, measured with the demo's own recipe, data and library calls.

    .venv/bin/python benchmarks/demo_profile.py --data runs/demo-s5/data -o benchmarks/results/demo-speed/profile
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/demo_profile.py ...  # AVX2 kernels

`--set key=value` overrides the recipe and `--unfused` uses the optimizer's per-parameter loop (e.g.
`--set num_workers=2 --set cache_images=false --unfused` for the training as it was before issue 21). Writes profile.json and profile.md: seconds per epoch of each part, its share of a
training epoch, the slowest torch operators (torch.profiler, self CPU time), the machine's `lscpu` model
line and the command. On a shared machine read the shares and ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from reid_export.checkpoint import init_model, save_checkpoint
from reid_export.training import load_recipe
from reid_export.training import loop
from reid_export.training.dataset import ReidDataset
from reid_export.training.evaluation import choose_embedding
from reid_export.training.layouts import load_training_data, resolve_attributes
from reid_export.training.losses import ReidLoss
from reid_export.training.transforms import train_transform

PARTS = ("data", "forward", "backward", "optimizer")


def main() -> None:
    args = _parse()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    config = load_recipe(args.recipe, {"data": str(args.data), "out": str(args.out / "unused.pt"),
                                       **{k: _value(v) for k, v in overrides.items()}})
    torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = load_training_data(config.data, attributes=config.attributes, val_ids=config.val_ids,
                              hold_out=config.chooses_embedding, progress=False)
    config = config.with_overrides({"attributes": resolve_attributes(config.attributes, data)})
    transform = train_transform(config.preprocess, flip=config.flip, pad_crop=config.pad_crop,
                                random_erasing=config.random_erasing)
    arrays = data.attribute_arrays() if config.attributes else ()
    result = {"recipe": config.to_dict(), "fused_optimizer": not args.unfused, "images_per_epoch": len(data.train), "threads": torch.get_num_threads(),
              "env": {k: os.environ.get(k, "") for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")},
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "lscpu": _lscpu(),
              "command": " ".join([os.path.relpath(sys.executable), *sys.argv])}

    # 1. decode + resize + augment of every training image, in this process: once without and once with the cache
    for name, cache in (("decode_augment_s_per_epoch", False), ("cached_augment_s_per_epoch", True)):
        dataset = ReidDataset(data.train, data.labels, transform, *arrays, cache=cache)
        for _ in range(1 + cache):  # the cached pass is the second one
            started = time.perf_counter()
            for i in range(len(dataset)):
                dataset[(i, i)]
        result[name] = time.perf_counter() - started

    # 2. training steps under torch.profiler, each part in its own region
    model = init_model(config.model_config(data.num_train_ids), config.init)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    criterion = ReidLoss(label_smoothing=config.label_smoothing, triplet_weight=config.triplet_weight,
                         margin=config.margin, center_weight=config.center_loss_weight,
                         num_classes=data.num_train_ids, feature_dim=model.config.embedding_dim,
                         center_lr=config.center_lr, attribute_weight=config.attribute_weight)
    optimizer = loop._optimizer(config, model)
    if args.unfused:  # the optimizer as it was: same class and settings, torch's per-parameter for-loop
        optimizer = type(optimizer)(model.parameters(), **{**optimizer.defaults, "fused": None, "foreach": False})
    dataset = ReidDataset(data.train, data.labels, transform, *arrays, cache=config.cache_images)
    loader = loop._train_loader(dataset, data.labels, config, torch.device("cpu"))
    loader.batch_sampler.set_epoch(0)
    batches = iter(loader)
    steps_per_epoch = len(loader)
    for _ in range(args.warmup):
        _step(model, criterion, optimizer, batches, memory_format)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            _step(model, criterion, optimizer, batches, memory_format)
    step_s = (time.perf_counter() - started) / args.steps
    events = prof.key_averages()
    regions = {e.key: e.cpu_time_total / 1e6 / args.steps for e in events if e.key in PARTS}
    measured = sum(regions.values())
    result["step_s"] = step_s
    result["images_per_sec"] = config.batch_size / step_s
    result["parts_share"] = {k: regions.get(k, 0.0) / measured for k in PARTS}
    result["top_ops"] = [{"op": e.key, "self_cpu_share": e.self_cpu_time_total / max(1, sum(
        x.self_cpu_time_total for x in events))} for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]]
    train_s = step_s * steps_per_epoch

    # 3. A/B in one process, variants taking turns, so that a shared machine's load falls on all of them alike
    if args.ab_reps:
        result["ab_optimizer_step_ms"] = _ab_optimizer(model, config, args.ab_reps)
        result["ab_train_step_ms_by_size"] = _ab_sizes(config, data.num_train_ids, args.ab_reps)

    # 4. one checkpoint write (the loop writes one per epoch) and the validation pass (once per run)
    started = time.perf_counter()
    save_checkpoint(args.out / "profile-checkpoint.pt", model, epoch=1, optimizer=optimizer,
                    recipe=config.to_dict())
    result["checkpoint_write_s"] = time.perf_counter() - started
    (args.out / "profile-checkpoint.pt").unlink()
    if data.validation is not None:
        split, val_loader = loop._eval_split(data.validation.query, data.validation.gallery, config,
                                             torch.device("cpu"))
        started = time.perf_counter()
        choose_embedding(model, split, val_loader, torch.device("cpu"), channels_last=config.channels_last,
                         progress=False)
        result["validation_s_per_run"] = time.perf_counter() - started
    epoch_s = train_s + result["checkpoint_write_s"]
    result["epoch_s"] = epoch_s
    result["epoch_share"] = {**{k: train_s * v / epoch_s for k, v in result["parts_share"].items()},
                             "checkpoint_write": result["checkpoint_write_s"] / epoch_s}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "profile.md").write_text(_markdown(result))
    print(_markdown(result))


def _ab_optimizer(model, config, reps: int) -> dict:
    """Median ms of one optimizer step, torch's per-parameter loop against the fused kernel, same gradients."""
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    fused = loop._optimizer(config, model)
    unfused = type(fused)(model.parameters(), **{**fused.defaults, "fused": None, "foreach": False})
    return _alternate({"loop": unfused.step, "fused": fused.step}, reps)


def _ab_sizes(config, num_classes: int, reps: int) -> dict:
    """Median ms of forward + loss + backward + fused optimizer step on a random batch, per input size and
    memory format."""
    steps = {}
    for height, width, memory_format in ((128, 64, torch.channels_last), (96, 48, torch.channels_last),
                                         (64, 32, torch.channels_last), (64, 32, torch.contiguous_format)):
        sized = config.with_overrides({"height": height, "width": width})
        model = init_model(sized.model_config(num_classes), config.init).to(memory_format=memory_format).train()
        criterion = ReidLoss(label_smoothing=config.label_smoothing, triplet_weight=config.triplet_weight,
                             margin=config.margin, num_classes=num_classes, feature_dim=model.config.embedding_dim)
        optimizer = loop._optimizer(config, model)
        images = torch.randn(config.batch_size, 3, height, width).to(memory_format=memory_format)
        labels = torch.arange(config.batch_size) // max(config.k, 1) % num_classes
        name = "channels-last" if memory_format == torch.channels_last else "contiguous"
        steps[f"{height}x{width} {name}"] = lambda m=model, c=criterion, o=optimizer, x=images: loop.train_step(
            m, c, o, x, labels)
    return _alternate(steps, reps)


def _alternate(variants: dict, reps: int) -> dict:
    times = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up
        fn()
    for _ in range(reps):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - started))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def _step(model, criterion, optimizer, batches, memory_format) -> None:
    with record_function("data"):
        images, labels, _, *attributes = next(batches)
        images = images.to(memory_format=memory_format)
    with record_function("forward"):
        outputs = model(images)
        loss, _ = criterion(outputs, labels, *attributes)
    optimizer.zero_grad(set_to_none=True)
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer"):
        optimizer.step()


def _markdown(r: dict) -> str:
    lines = [f"# Demo training profile ({r['recipe']['recipe']} recipe, {r['images_per_epoch']} images per epoch)", "",
             f"- machine: `{r['lscpu']}`; torch CPU capability {r['cpu_capability']}, {r['threads']} threads, "
             f"env {r['env']}",
             f"- command: `{r['command']}`",
             f"- recipe: num_workers {r['recipe']['num_workers']}, cache_images {r['recipe']['cache_images']}, "
             f"channels_last {r['recipe']['channels_last']}, fused optimizer {r['fused_optimizer']}, batch {r['recipe']['batch_size']}, "
             f"{r['recipe']['height']}x{r['recipe']['width']}",
             f"- {r['images_per_sec']:.1f} img/s, {r['step_s'] * 1000:.0f} ms per step, {r['epoch_s']:.1f} s per epoch",
             f"- decode + resize + augment, one epoch in one process: {r['decode_augment_s_per_epoch']:.2f} s "
             f"uncached, {r['cached_augment_s_per_epoch']:.2f} s cached",
             f"- checkpoint write {r['checkpoint_write_s']:.2f} s per epoch; validation pass "
             f"{r.get('validation_s_per_run', 0):.1f} s per run", "",
             "| part of an epoch | share |", "|---|---:|"]
    lines += [f"| {k} | {100 * v:.1f}% |" for k, v in r["epoch_share"].items()]
    for key, what in (("ab_optimizer_step_ms", "optimizer step"), ("ab_train_step_ms_by_size", "training step")):
        if key in r:
            lines += ["", f"| {what}, variants taking turns | median ms |", "|---|---:|"]
            lines += [f"| {k} | {v:.0f} |" for k, v in r[key].items()]
    lines += ["", "| torch operator | self CPU share |", "|---|---:|"]
    lines += [f"| `{o['op']}` | {100 * o['self_cpu_share']:.1f}% |" for o in r["top_ops"]]
    return "\n".join(lines) + "\n"


def _lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    isa = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    return (f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, {isa}"
            f"{', vnni' if any('vnni' in f for f in flags) else ''}")


def _value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a synthetic Market-1501 folder (reid-export synth)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder for profile.json and profile.md")
    parser.add_argument("--recipe", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--unfused", action="store_true", help="the optimizer's per-parameter loop (as before)")
    parser.add_argument("--steps", type=int, default=10, help="profiled training steps")
    parser.add_argument("--ab-reps", type=int, default=0, help="A/B turns: optimizer loop vs fused, input sizes")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    return parser.parse_args()


if __name__ == "__main__":
    main()
