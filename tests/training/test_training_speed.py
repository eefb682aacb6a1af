"""What makes the demo's training fast on 2 CPU cores (issue 21): images decoded once, a fused optimizer."""

from __future__ import annotations

from dataclasses import replace

import torch

from reid_export.data.market1501 import Sample
from reid_export.training import ReidDataset, load_recipe, load_training_data, loop
from reid_export.training.transforms import eval_transform, train_transform


def test_cached_images_give_the_same_tensors_as_decoding_every_time(tiny_config):
    data = load_training_data(tiny_config.data, progress=False)
    transform = train_transform(tiny_config.preprocess, flip=True, pad_crop=True, random_erasing=True)
    keys = [(i, 1000 + i) for i in range(6)]
    decoded = ReidDataset(data.train, data.labels, transform)
    cached = ReidDataset(data.train, data.labels, transform, cache=True)
    for _ in range(2):  # the first pass fills the cache, the second reads it
        for key in keys:
            assert torch.equal(cached[key][0], decoded[key][0])


def test_cached_images_are_not_decoded_again(tiny_config, tmp_path):
    data = load_training_data(tiny_config.data, progress=False)
    copy = tmp_path / data.train[0].path.name
    copy.write_bytes(data.train[0].path.read_bytes())
    sample = Sample(path=copy, pid=data.train[0].pid, camid=data.train[0].camid)
    dataset = ReidDataset([sample], [0], eval_transform(tiny_config.preprocess), cache=True)
    first = dataset[0][0]
    copy.unlink()  # gone from disk: the second read must come from memory
    assert torch.equal(dataset[0][0], first)


def test_the_optimizer_is_fused_on_cpu(tiny_config):
    """Adam's per-parameter loop took about a fifth of a ResNet-18 step on 2 cores; the fused kernel a twentieth."""
    model = torch.nn.Linear(4, 2)
    for name in ("adam", "adamw", "sgd"):
        optimizer = loop._optimizer(replace(tiny_config, optimizer=name), model)
        assert optimizer.param_groups[0]["fused"] is True


def test_the_fused_optimizer_takes_the_same_steps_as_the_loop(tiny_config):
    """Fused changes the speed, not the recipe: after 20 Adam steps the weights agree to float rounding."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = loop._optimizer(replace(tiny_config, optimizer="adam", lr=1e-2, weight_decay=5e-4), models[0])
    plain = torch.optim.Adam(models[1].parameters(), lr=1e-2, weight_decay=5e-4, foreach=False)
    for step in range(20):
        x = torch.randn(8, 16, generator=torch.Generator().manual_seed(step))
        for model, optimizer in zip(models, (fused, plain)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_quick_recipe_loads_in_process_from_a_cache():
    quick = load_recipe("quick", {"data": "d", "out": "o.pt"})
    assert (quick.num_workers, quick.cache_images) == (0, True)


def test_cached_training_runs_the_same_as_uncached(tiny_config):
    """Same seed, same batches, same augmentation: the cache changes where pixels come from, not the run."""
    from reid_export.training import train

    a = train(replace(tiny_config, epochs=1, random_erasing=False), quiet=True)
    b = train(replace(tiny_config, epochs=1, random_erasing=False, cache_images=True,
                      out=str(tiny_config.out).replace(".pt", "-cached.pt")), quiet=True)
    assert a.metrics["loss"] == b.metrics["loss"]
