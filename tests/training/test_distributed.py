"""Distributed training pieces: the batch split per rank, the single-process fallback, and a real
2-process DDP run on CPU (gloo) under torchrun."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
import torch

from reid_export.errors import DataError, ReidExportError, RuntimeUnavailable
from reid_export.training import PKSampler, RandomBatchSampler
from reid_export.training.distributed import (
    DistEnv,
    DistributedBatchSampler,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
    process_group,
    unwrap,
    wrap_model,
)

# 12 identities with 3..8 images each
LABELS = [label for label in range(12) for _ in range(3 + label % 6)]
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _epoch(sampler, epoch: int) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def _shards(make, world_size: int, epoch: int = 0) -> list[list[list[tuple[int, int]]]]:
    return [_epoch(DistributedBatchSampler(make(), rank, world_size), epoch) for rank in range(world_size)]


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_pk_shards_are_disjoint_slices_of_the_global_batch_with_whole_identities(world_size):
    make = lambda: PKSampler(LABELS, p=4, k=3, seed=5)  # noqa: E731
    global_batches = _epoch(make(), 0)
    shards = _shards(make, world_size)
    for step, batch in enumerate(global_batches):
        parts = [shard[step] for shard in shards]
        assert [pair for part in parts for pair in part] == batch  # disjoint, nothing lost, draws kept
        for part in parts:  # P x K per rank: p / world_size identities of k images, none shared
            counts = Counter(LABELS[i] for i, _ in part)
            assert len(counts) == 4 // world_size and set(counts.values()) == {3}
        owners = [{LABELS[i] for i, _ in part} for part in parts]
        assert sum(len(o) for o in owners) == len(set().union(*owners))


def test_every_rank_takes_the_same_number_of_steps():
    for make in (lambda: PKSampler(LABELS, p=4, k=2, seed=0), lambda: RandomBatchSampler(len(LABELS), 6, seed=0)):
        shards = _shards(make, 2)
        assert len(shards[0]) == len(shards[1]) == len(make()) == len(DistributedBatchSampler(make(), 1, 2))
        assert {len(b) for shard in shards for b in shard} == {len(_epoch(make(), 0)[0]) // 2}


def test_random_batches_split_evenly_and_cover_each_image_at_most_once():
    shards = _shards(lambda: RandomBatchSampler(len(LABELS), 8, seed=1), 2)
    indices = [i for shard in shards for batch in shard for i, _ in batch]
    assert len(indices) == len(set(indices)) == len(LABELS) // 8 * 8


def test_shards_are_deterministic_and_follow_the_epoch():
    sampler = DistributedBatchSampler(PKSampler(LABELS, p=4, k=2, seed=3), 1, 2)
    again = DistributedBatchSampler(PKSampler(LABELS, p=4, k=2, seed=3), 1, 2)
    assert _epoch(sampler, 2) == _epoch(again, 2) and sampler.epoch == sampler.batch_sampler.epoch == 2
    assert _epoch(sampler, 0) != _epoch(sampler, 1)
    assert _epoch(sampler, 0) != _epoch(DistributedBatchSampler(PKSampler(LABELS, p=4, k=2, seed=4), 1, 2), 0)


def test_a_split_smaller_than_one_batch_drops_the_same_remainder_on_every_rank():
    shards = _shards(lambda: RandomBatchSampler(5, 8), 2)
    assert [len(b) for shard in shards for b in shard] == [2, 2]
    assert not {i for i, _ in shards[0][0]} & {i for i, _ in shards[1][0]}


def test_batches_that_do_not_split_evenly_are_refused_with_the_fix():
    with pytest.raises(DataError, match=r"p = 3 identities .* 2 ranks .* p divisible by 2 \(e.g. p = 2"):
        DistributedBatchSampler(PKSampler(LABELS, p=3, k=2), 0, 2)
    with pytest.raises(DataError, match=r"batch_size 9 cannot be split evenly over 2 ranks"):
        DistributedBatchSampler(RandomBatchSampler(len(LABELS), 9), 0, 2)
    with pytest.raises(DataError, match=r"0 <= rank < world_size, found rank 2"):
        DistributedBatchSampler(PKSampler(LABELS, p=2, k=2), 2, 2)


@pytest.mark.parametrize("world_size", [None, "1"])
def test_without_torchrun_everything_is_single_process(monkeypatch, world_size):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    if world_size:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    env = init_distributed("cpu")
    assert env == DistEnv(rank=0, local_rank=0, world_size=1, is_main=True, backend=None) and not env.distributed
    assert not torch.distributed.is_initialized()
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, env) is model and unwrap(model) is model
    assert all_reduce_mean(2.5, env) == 2.5 and all_reduce_mean({"loss": 1.0}, env) == {"loss": 1.0}
    assert env.device("cuda") == torch.device("cuda")
    barrier(env)
    cleanup(env)
    with process_group("cpu") as same:
        assert same == env


def test_a_missing_backend_is_a_clear_error(monkeypatch):
    for name, value in zip(TORCHRUN_ENV, ("2", "0", "0", "127.0.0.1", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.distributed, "is_gloo_available", lambda: False)
    with pytest.raises(RuntimeUnavailable, match="needs the gloo backend, which this torch build lacks"):
        init_distributed("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeUnavailable, match="torch sees no CUDA GPU; pass --device cpu"):
        init_distributed("cuda")


def test_an_incomplete_torchrun_environment_is_a_clear_error(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ReidExportError, match=r"RANK=None; expected RANK in 0..1"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ReidExportError, match="MASTER_ADDR and MASTER_PORT not set"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ReidExportError, match="WORLD_SIZE='two' is not an integer"):
        init_distributed("cpu")


# A rank of the 2-process run: same seed and model on both, DDP, a few P x K steps on its own shard.
_WORKER = textwrap.dedent('''
    import json, sys
    from pathlib import Path

    import torch

    from reid_export.contract import Preprocess
    from reid_export.models import ModelConfig, ReidNet
    from reid_export.training import PKSampler, ReidLoss, train_step
    from reid_export.training.distributed import (DistributedBatchSampler, all_reduce_mean, process_group, unwrap,
                                                  wrap_model)



    def global_batches(labels):
        batches = []
        for epoch in range(2):
            sampler = PKSampler(labels, p=4, k=2, seed=0)
            sampler.set_epoch(epoch)
            batches.extend(sampler)
        return batches


    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    with process_group("cpu") as env:
        torch.manual_seed(0)
        model = ReidNet(ModelConfig(arch="resnet18", num_classes=4, neck="bnneck",
                                    preprocess=Preprocess(height=64, width=32)))
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        model = wrap_model(model, env)
        data = torch.randn(16, 3, 64, 32, generator=torch.Generator().manual_seed(1))
        labels = [i // 4 for i in range(16)]  # 4 ids x 4 images
        sampler = DistributedBatchSampler(PKSampler(labels, p=4, k=2, seed=0), env.rank, env.world_size)
        criterion = ReidLoss(label_smoothing=0.1, triplet_weight=1.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        seen, losses = [], []
        model.train()
        for epoch in range(2):
            sampler.set_epoch(epoch)
            for batch in sampler:
                index = [i for i, _ in batch]
                seen.append(index)
                loss, _ = train_step(model, criterion, optimizer, data[index], torch.tensor([labels[i] for i in index]))
                losses.append(all_reduce_mean(loss, env))
        if env.is_main:
            torch.save(initial, out / "initial.pt")
        torch.save(unwrap(model).state_dict(), out / f"rank{env.rank}.pt")
        report = {"rank": env.rank, "world_size": env.world_size, "ddp": type(model).__name__, "seen": seen,
                  "losses": losses, "params": [name for name, _ in unwrap(model).named_parameters()],
                  "global": [[i for i, _ in b] for b in global_batches(labels)]}
        (out / f"rank{env.rank}.json").write_text(json.dumps(report))

''')


@pytest.mark.slow
def test_two_ddp_processes_on_disjoint_shards_end_with_identical_trained_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                         env={**_clean_env(), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world_size"], r["ddp"]) for r in reports] == [(0, 2, "DistributedDataParallel"),
                                                                         (1, 2, "DistributedDataParallel")]
    steps = len(reports[0]["global"])
    assert steps == 4 and len(reports[0]["seen"]) == len(reports[1]["seen"]) == steps
    for step, batch in enumerate(reports[0]["global"]):
        a, b = reports[0]["seen"][step], reports[1]["seen"][step]
        assert not set(a) & set(b) and sorted(a + b) == sorted(batch)
        assert {i // 4 for i in a}.isdisjoint({i // 4 for i in b})  # whole identities per rank
    assert reports[0]["losses"] == reports[1]["losses"]  # all_reduce_mean agrees on every rank

    initial = torch.load(tmp_path / "initial.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    params = reports[0]["params"]
    assert params and set(params) <= set(initial)
    diff = max(float((ranks[0][n] - ranks[1][n]).abs().max()) for n in params)
    moved = max(float((ranks[0][n] - initial[n]).abs().max()) for n in params)
    assert diff == 0.0, f"ranks disagree by {diff} after DDP steps"
    assert moved > 1e-3, "the weights did not change: no training happened"


# -- helpers ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}

