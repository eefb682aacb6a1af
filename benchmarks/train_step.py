"""One training step of a recipe's model on random images, timed: what a variant (input size, base channels,
memory format, batch, threads) does to the convolution-bound part of the demo's training.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/train_step.py \\
        --recipe quick --variant base_channels=64 --variant base_channels=32 --variant height=96,width=48 --threads 2

Each `--variant` (repeat it to compare several) is one row: the model the recipe builds
(attribute heads on), forward + label-smoothed cross-entropy + backward + the recipe's fused optimizer, after
3 warm-up steps, mean of `--steps`. No data loading, no triplet loss: the demo's training loop is slower per
step (benchmarks/demo_profile.py times that). Prints the machine's `lscpu` model name and torch's CPU capability.
"""

from __future__ import annotations

import argparse
import time

import torch
from demo_profile import _lscpu  # benchmarks/: the machine line the demo profile prints

from reid_export.checkpoint import init_model
from reid_export.options import parse_sets
from reid_export.training import load_recipe
from reid_export.training.loop import _optimizer


def step_time(recipe: str, overrides: dict, *, batch: int, steps: int, channels_last: bool) -> float:
    config = load_recipe(recipe, {"attributes": True, **overrides})
    torch.manual_seed(0)
    model = init_model(config.model_config(135), config.init)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    optimizer = _optimizer(config, model)
    x = torch.randn(batch, 3, config.height, config.width).contiguous(memory_format=memory_format)
    y = torch.randint(0, 135, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x)["logits"], y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="quick")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="recipe overrides of one row, e.g. base_channels=32 or height=96,width=48")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--contiguous", action="store_true", help="contiguous instead of channels-last")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{_lscpu()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, "
          f"{'contiguous' if args.contiguous else 'channels-last'}")
    for variant in args.variant or [""]:
        overrides = parse_sets([kv for kv in variant.split(",") if kv])
        seconds = step_time(args.recipe, overrides, batch=args.batch, steps=args.steps,
                            channels_last=not args.contiguous)
        print(f"{args.recipe} {variant or '(as is)'}: {seconds * 1000:.0f} ms/step, {args.batch / seconds:.1f} img/s")


if __name__ == "__main__":
    main()
