"""The recipes carry the papers' values; the schedules hit their milestones."""

import dataclasses
import math

import pytest

from verydeep.recipes import RECIPES, get_recipe, override, recipe_key
from verydeep.registry import get_entry
from verydeep.schedules import cosine_lr, make_schedule, plateau_drops, step_lr


def test_resnet_cifar_recipe_is_sec_4_2():
    r = get_recipe("resnet_cifar")
    assert (r.batch_size, r.lr, r.momentum, r.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert r.iterations == 64_000
    assert r.milestone_steps(r.iterations) == [32_000, 48_000]
    assert r.mean == "pixel"
    assert (r.warmup_lr, r.warmup_until_error) == (0.01, 0.8) and "resnet110" in r.warmup_for


def test_resnet_imagenet_recipe_is_sec_3_4():
    r = get_recipe("resnet_imagenet")
    assert (r.batch_size, r.lr, r.momentum, r.weight_decay, r.iterations) == (256, 0.1, 0.9, 1e-4, 600_000)
    assert r.schedule == "plateau" and r.scale == (256, 480) and r.mean == "pixel" and r.color_jitter


def test_vgg_recipe_is_sec_3_1():
    r = get_recipe("vgg")
    assert (r.batch_size, r.lr, r.momentum, r.weight_decay) == (256, 0.01, 0.9, 5e-4)
    assert r.iterations == 370_000 and r.schedule == "plateau" and r.plateau_max_drops == 3
    assert r.scale == (256, 512) and r.mean == "rgb"


def test_recipes_are_frozen_and_overrides_are_checked():
    r = get_recipe("resnet_cifar")
    with pytest.raises(AttributeError):
        r.lr = 1.0
    changed = override(r, lr="0.05", milestones="0.3,0.6", batch_size=64)
    assert (changed.lr, changed.milestones, changed.batch_size) == (0.05, (0.3, 0.6), 64)
    assert r.lr == 0.1
    with pytest.raises(ValueError, match="unknown recipe field lrate; valid fields: batch_size"):
        override(r, lrate=0.1)
    with pytest.raises(ValueError, match="batch_size='many'"):
        override(r, batch_size="many")
    with pytest.raises(ValueError, match="one of step, plateau, cosine"):
        override(r, schedule="linear")
    with pytest.raises(ValueError, match="unknown recipe 'adam'; valid recipes: resnet_cifar"):
        get_recipe("adam")


def test_scale_jittering_of_small_images_takes_two_ordered_sides():
    vgg = get_recipe("vgg")
    assert vgg.small_scale == () and override(vgg, small_scale="32,64").small_scale == (32, 64)
    for bad in ("64,32", "32", "32,48,64", "0,32"):
        with pytest.raises(ValueError, match="small_scale must be two sides Smin,Smax with Smin <= Smax"):
            override(vgg, small_scale=bad)


def test_a_field_added_after_0_1_stays_out_of_run_keys_at_its_default():
    vgg = get_recipe("vgg")
    assert "small_scale" not in recipe_key(vgg) and set(recipe_key(vgg)) == set(dataclasses.asdict(vgg)) - {
        "small_scale"
    }
    assert recipe_key(override(vgg, small_scale="32,64"))["small_scale"] == (32, 64)


def test_each_model_gets_its_papers_recipe():
    def default_recipe(name: str) -> str:
        return get_entry(name).recipe

    assert default_recipe("vgg_d") == "vgg" and default_recipe("vgg16") == "vgg"
    assert default_recipe("resnet50") == "resnet_imagenet" and default_recipe("plain34") == "resnet_imagenet"
    assert default_recipe("resnet56") == "resnet_cifar" and default_recipe("plain20") == "resnet_cifar"
    assert set(RECIPES) == {"resnet_cifar", "resnet_imagenet", "vgg"}


def test_step_schedule_divides_by_ten_at_32k_and_48k():
    schedule = make_schedule(get_recipe("resnet_cifar"), 64_000, "resnet56")
    assert [schedule.lr(s) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert step_lr(10, 1.0, [5, 10], 0.5) == 0.25


def test_short_runs_keep_the_milestones_fractions():
    schedule = make_schedule(get_recipe("resnet_cifar"), 1000, "resnet20")
    assert schedule.lr(499) == pytest.approx(0.1) and schedule.lr(500) == pytest.approx(0.01)
    assert schedule.lr(750) == pytest.approx(0.001)


def test_resnet110_warms_up_at_001_until_training_error_below_80_percent_then_returns_to_01():
    schedule = make_schedule(get_recipe("resnet_cifar"), 64_000, "resnet110")
    assert schedule.lr(0) == pytest.approx(0.01)
    schedule.observe_train_error(99, 0.85)
    assert schedule.lr(100) == pytest.approx(0.01)
    schedule.observe_train_error(399, 0.79)
    assert schedule.lr(399) == pytest.approx(0.01)
    assert schedule.lr(400) == pytest.approx(0.1)
    schedule.observe_train_error(500, 0.95)  # the warm-up never comes back
    assert schedule.lr(1000) == pytest.approx(0.1)
    assert schedule.lr(32_000) == pytest.approx(0.01) and schedule.lr(48_000) == pytest.approx(0.001)
    restored = make_schedule(get_recipe("resnet_cifar"), 64_000, "resnet110")
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(400) == pytest.approx(0.1)


def test_no_warmup_for_shallower_nets():
    assert make_schedule(get_recipe("resnet_cifar"), 64_000, "resnet56").lr(0) == pytest.approx(0.1)


def test_plateau_drops_after_patience_and_at_most_three_times():
    assert plateau_drops([0.5, 0.4, 0.3], patience=3, max_drops=3) == 0
    assert plateau_drops([0.5, 0.4, 0.4, 0.4, 0.4], patience=3, max_drops=3) == 1
    flat = [0.5] * 40
    assert plateau_drops(flat, patience=3, max_drops=3) == 3
    schedule = make_schedule(get_recipe("vgg"), 370_000, "vgg_d")
    assert schedule.lr(0) == pytest.approx(0.01)
    for error in [0.5, 0.4, 0.41, 0.42, 0.43]:
        schedule.observe_val_error(error)
    assert schedule.lr(1) == pytest.approx(0.001)


def test_cosine_goes_from_base_to_zero():
    assert cosine_lr(0, 0.1, 100) == pytest.approx(0.1)
    assert cosine_lr(50, 0.1, 100) == pytest.approx(0.05)
    assert cosine_lr(100, 0.1, 100) == pytest.approx(0.0, abs=1e-12)
    schedule = make_schedule(override(get_recipe("resnet_cifar"), schedule="cosine"), 100, "resnet20")
    assert math.isclose(schedule.lr(25), 0.1 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_step_schedule_without_milestones_is_an_error():
    with pytest.raises(ValueError, match="--milestones"):
        make_schedule(override(get_recipe("vgg"), schedule="step"), 100, "vgg_a")


def test_the_step_rate_is_divided_by_ten_by_default_and_by_the_recipes_factor_when_it_has_another():
    assert step_lr(10, 1.0, [5]) == pytest.approx(0.1) and step_lr(10, 1.0, [5, 10]) == pytest.approx(0.01)
    halving = make_schedule(override(get_recipe("resnet_cifar"), lr_factor=0.5), 100, "resnet20")
    assert [halving.lr(s) for s in (0, 50, 75)] == pytest.approx([0.1, 0.05, 0.025])


def test_a_one_step_cosine_run_ends_at_zero():
    assert cosine_lr(1, 1.0, 1) == pytest.approx(0.0) and cosine_lr(0, 1.0, 1) == pytest.approx(1.0)


def test_the_plateau_counts_stale_epochs_one_at_a_time_and_restarts_after_an_improvement_or_a_drop():
    assert [plateau_drops([0.5] * n, 3, 3) for n in (3, 4, 6, 7)] == [0, 1, 1, 2]
    assert plateau_drops([0.5, 0.4, 0.4, 0.4], 3, 3) == 0 and plateau_drops([0.5, 0.4, 0.4, 0.4, 0.4], 3, 3) == 1


def test_an_improvement_must_beat_the_best_by_the_threshold():
    just = 0.5 - 1e-4  # the best minus the default threshold: not better
    assert plateau_drops([0.5, just, just, just], 3, 3) == 1
    assert plateau_drops([0.5, 0.4, 0.3, 0.2], 3, 3) == 0  # steady gains well above the threshold
    assert plateau_drops([0.5, 0.49995, 0.49992, 0.49991], 3, 3) == 1  # gains below the default 1e-4


def test_no_warmup_without_a_warmup_rate_even_for_resnet110():
    recipe = override(get_recipe("resnet_cifar"), warmup_lr=0.0)
    assert not make_schedule(recipe, 1000, "resnet110").warmup


def test_the_warmup_ends_only_once_the_training_error_is_below_80_percent():
    schedule = make_schedule(get_recipe("resnet_cifar"), 1000, "resnet110")
    schedule.observe_train_error(9, 0.8)  # at the threshold, not below it
    assert schedule.warmup_ended_at is None and schedule.lr(10) == pytest.approx(0.01)
    schedule.observe_train_error(19, 0.79)
    assert schedule.warmup_ended_at == 20 and schedule.lr(20) == pytest.approx(0.1)


def test_a_schedule_restored_from_a_checkpoint_keeps_its_length_and_observations():
    plateau = make_schedule(get_recipe("vgg"), 100, "vgg_d")
    for error in (0.5, 0.5, 0.5, 0.5):
        plateau.observe_val_error(error)
    restored = make_schedule(get_recipe("vgg"), 400, "vgg_d")
    restored.load_state_dict(plateau.state_dict())
    assert restored.total_steps == 100 and restored.lr(0) == pytest.approx(0.001)
    restored.observe_val_error(0.4)  # the record goes on from where it stopped
    assert restored.val_errors == [0.5, 0.5, 0.5, 0.5, 0.4]
    step = make_schedule(get_recipe("resnet_cifar"), 100, "resnet20")
    longer = make_schedule(get_recipe("resnet_cifar"), 200, "resnet20")
    longer.load_state_dict(step.state_dict())
    assert longer.total_steps == 100 and longer.lr(60) == step.lr(60) == pytest.approx(0.01)
    old = make_schedule(get_recipe("resnet_cifar"), 200, "resnet20")
    old.load_state_dict({"val_errors": [], "warmup_ended_at": None})  # a checkpoint from before total_steps
    assert old.total_steps == 200
