"""Recipes: named and path lookup, overrides, and the errors for unknown or wrong settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid_export.errors import ReidExportError
from reid_export.training import TrainConfig, available_recipes, load_recipe, recipe_dir


def test_named_recipes_are_found_next_to_the_package():
    assert recipe_dir() == Path(__file__).resolve().parents[2] / "train"
    assert {"quick", "seed"} <= set(available_recipes())


def test_seed_recipe_is_the_notebook_recipe():
    c = load_recipe("seed")
    assert (c.recipe, c.arch, c.height, c.width, c.neck) == ("seed", "resnet50", 128, 64, "none")
    assert (c.optimizer, c.lr, c.batch_size, c.k, c.epochs) == ("adam", 1e-4, 32, 0, 10)
    assert (c.label_smoothing, c.triplet_weight, c.scheduler) == (0.0, 0.0, "constant")
    assert not c.pk


def test_quick_recipe_uses_pk_batches_and_bnneck():
    c = load_recipe("quick")
    assert (c.arch, c.neck, c.zero_init_residual, c.height, c.width) == ("resnet18", "bnneck", True, 128, 64)
    assert (c.ids_per_batch, c.k, c.batch_size) == (8, 4, 32)
    assert (c.label_smoothing, c.margin, c.scheduler) == (0.1, 0.3, "cosine")
    assert c.warmup_epochs > 0 and c.flip and c.pad_crop


def test_the_demo_recipe_is_the_quick_recipe_half_as_wide():
    """One recipe to tune: the demo's differs from quick.toml only where its header says (width, lr)."""
    quick, demo = load_recipe("quick").to_dict(), load_recipe("demo").to_dict()
    differ = {k for k in quick if quick[k] != demo[k]} - {"recipe"}
    assert differ == {"base_channels", "lr"}, differ
    assert (quick["base_channels"], demo["base_channels"]) == (64, 32)


def test_a_recipe_takes_its_base_and_gives_only_what_differs(tmp_path):
    (tmp_path / "narrow.toml").write_text('base = "quick"\nbase_channels = 16\n')
    (tmp_path / "narrower.toml").write_text('base = "narrow.toml"\nepochs = 3\n')  # a path: next to this file
    c = load_recipe(tmp_path / "narrower.toml")
    quick = load_recipe("quick")
    assert (c.recipe, c.base_channels, c.epochs) == ("narrower", 16, 3)
    assert (c.arch, c.lr, c.k, c.neck) == (quick.arch, quick.lr, quick.k, quick.neck)


def test_a_base_chain_that_comes_back_or_names_nothing_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ReidExportError, match=r"base. chain comes back to itself \(a.toml -> b.toml -> a.toml\)"):
        load_recipe(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('base = "nosuch"\n')
    with pytest.raises(ReidExportError, match="unknown recipe 'nosuch'; choose one of"):
        load_recipe(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("base = 3\n")
    with pytest.raises(ReidExportError, match="base must be a recipe name or a .toml path, found 3"):
        load_recipe(tmp_path / "d.toml")


def test_overrides_apply_and_none_values_are_skipped():
    c = load_recipe("quick", {"epochs": 3, "data": "d", "out": "o.pt", "lr": None, "num-workers": 0})
    assert (c.epochs, c.data, c.out, c.lr, c.num_workers) == (3, "d", "o.pt", 2e-3, 0)


def test_overriding_batch_size_of_a_pk_recipe_rederives_p():
    c = load_recipe("quick", {"batch_size": 64})
    assert (c.batch_size, c.ids_per_batch, c.k) == (64, 16, 4)


def test_recipe_given_as_a_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('arch = "resnet18"\nepochs = 2\nlr = 1  # an int where a float is expected\n')
    c = load_recipe(path)
    assert (c.recipe, c.arch, c.epochs, c.lr) == ("mine", "resnet18", 2, 1.0)
    assert isinstance(c.lr, float)


def test_unknown_override_lists_the_valid_keys():
    with pytest.raises(ReidExportError, match=r"unknown training setting\(s\) \['epoch'\].*epochs"):
        load_recipe("quick", {"epoch": 3})


def test_unknown_key_in_a_recipe_file_lists_the_valid_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("learning_rate = 0.1\n")
    with pytest.raises(ReidExportError, match=r"bad.toml.*learning_rate.*valid keys are: recipe, data"):
        load_recipe(path)


def test_unknown_recipe_name_lists_the_recipes():
    with pytest.raises(ReidExportError, match=r"unknown recipe 'fast'.*quick.*seed"):
        load_recipe("fast")


def test_missing_recipe_file_is_an_error(tmp_path):
    with pytest.raises(ReidExportError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": "3"}, r"epochs must be int, found '3'"),
        ({"flip": 1}, r"flip must be bool"),
        ({"arch": "vgg16"}, r"unknown arch 'vgg16'; choose one of resnet18"),
        ({"scheduler": "linear"}, r"choose one of cosine, step, constant"),
        ({"batch_size": 60, "p": 8}, r"batch_size 60 is not p \* k"),
        ({"k": 0}, r"triplet loss .* needs P x K batches"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"epochs": 0}, r"epochs must be at least 1"),
        ({"base_channels": 12}, r"base_channels must be a multiple of 8"),
        ({"arch": "osnet_x0_25", "base_channels": 32}, r"base_channels=32: ResNet options; osnet_x0_25"),
    ],
)
def test_bad_settings_say_what_is_wrong(overrides, message):
    with pytest.raises(ReidExportError, match=message):
        load_recipe("quick", overrides)


def test_config_round_trips_through_a_dict():
    c = load_recipe("quick", {"lr_steps": (4, 8)})
    assert TrainConfig(**c.to_dict()) == c
    assert c.lr_steps == [4, 8]
