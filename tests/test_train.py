"""The training loop: it learns, it resumes exactly, and it loses nothing when things go wrong."""

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess

import pytest
import torch
from safetensors.torch import load_file

import verydeep
from verydeep.cli import main
from verydeep.runs import RunDir, load_checkpoint
from verydeep.train import Interrupted, NonFiniteLoss, TrainConfig, fit, forward_backward
from verydeep.weights import save_weights


def small(**changes) -> TrainConfig:
    settings = dict(model="resnet20", subset=512, val_size=200, epochs=2, log_every=4, overrides={"batch_size": 32})
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.mark.fashion_mnist
def test_a_few_hundred_steps_lower_the_training_error(tmp_path):
    cfg = small(subset=3000, iters=240, epochs=None, log_every=40, overrides={"batch_size": 32})
    summary = fit(cfg, tmp_path, progress=False)
    rows = [r for r in RunDir(tmp_path).read_metrics() if r.train_error is not None]
    assert summary.steps == 240
    assert rows[0].train_error > 0.5  # ten classes: ~90% wrong at first
    assert rows[-1].train_error < rows[0].train_error - 0.3
    assert summary.val_error < 0.4


@pytest.mark.fashion_mnist
def test_run_folder_holds_everything(tmp_path):
    summary = fit(small(epochs=1), tmp_path, progress=False)
    run = RunDir(tmp_path)
    config = json.loads(run.config.read_text())
    assert config["recipe"]["name"] == "resnet_cifar" and config["recipe"]["batch_size"] == 32
    assert config["environment"]["torch"] == torch.__version__ and "command" in config["environment"]
    fields = {"model", "epochs", "steps", "train_error", "val_error", "seconds", "images_per_second"}
    assert set(dataclasses.asdict(summary)) >= fields
    assert json.loads(run.summary.read_text())["steps"] == summary.steps == 16
    rows = run.read_metrics()
    epoch_rows = [r for r in rows if r.val_error is not None]
    assert len(epoch_rows) == 1 and epoch_rows[0].images_per_second > 0
    assert epoch_rows[0].val_top5_error <= epoch_rows[0].val_error
    model = verydeep.load_model(run.weights)
    assert model.verydeep_name == "resnet20" and model.fc.out_features == 10 and model.conv1.in_channels == 1
    assert load_checkpoint(run.checkpoint).step == 16


def interrupt_at(step_to_stop: int):
    def on_step(step: int) -> None:
        if step == step_to_stop:
            os.kill(os.getpid(), signal.SIGINT)

    return on_step


@pytest.mark.fashion_mnist
def test_resume_after_an_interruption_gives_the_same_weights(tmp_path):
    cfg = small(deterministic=True, epochs=2, subset=384)  # 12 steps an epoch
    fit(cfg, tmp_path / "straight", progress=False)
    with pytest.raises(Interrupted, match="--resume"):
        fit(cfg, tmp_path / "stopped", on_step=interrupt_at(17), progress=False)
    assert load_checkpoint(tmp_path / "stopped" / "checkpoint.pt").step == 17
    fit(cfg, tmp_path / "stopped", resume=True, progress=False)
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "stopped" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    steps = [r.step for r in RunDir(tmp_path / "stopped").read_metrics() if r.train_error is not None]
    assert steps == sorted(set(steps))  # appended, never duplicated
    assert steps == [r.step for r in RunDir(tmp_path / "straight").read_metrics() if r.train_error is not None]
    # the training error of the epoch it was stopped in counts the steps before the stop, too
    errors = {run: [r.train_error for r in RunDir(tmp_path / run).read_metrics()] for run in ("straight", "stopped")}
    assert errors["stopped"] == errors["straight"]
    summaries = [RunDir(tmp_path / run).read_summary().train_error for run in ("straight", "stopped")]
    assert summaries[0] == summaries[1]


def test_a_signal_while_the_run_is_set_up_stops_it_at_its_first_step_with_a_checkpoint(tmp_path, monkeypatch):
    # Ctrl-C before the loop has begun (the model being built, the first checkpoint being written) is the
    # same request to stop as one during it: the run stops at the next step, checkpointed, resumable.
    from verydeep import train

    def announce_then_signal(self, *args):
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train.Trainer, "announce", announce_then_signal)
    cfg = TrainConfig(model="resnet20", data="synthetic", subset=128, val_size=32, iters=4, precision="fp32",
                      overrides={"batch_size": 32})  # fmt: skip
    with pytest.raises(Interrupted, match="at step 1/4"):
        fit(cfg, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt").step == 1
    monkeypatch.undo()
    assert fit(cfg, tmp_path, resume=True, progress=False).steps == 4


@pytest.mark.fashion_mnist
def test_resume_continues_to_a_new_end_at_the_schedules_final_rate(tmp_path):
    fit(small(epochs=1), tmp_path, progress=False)  # 16 steps: lr 0.1, then 0.01 from step 8, 0.001 from 12
    summary = fit(small(epochs=2), tmp_path, resume=True, progress=False)
    assert summary.steps == 32
    rows = RunDir(tmp_path).read_metrics()
    assert [r.epoch for r in rows if r.val_error is not None] == [1, 2]
    assert [r.lr for r in rows if r.step > 16] == pytest.approx([0.001] * 5)  # never back up to 0.1
    assert len(json.loads((tmp_path / "config.json").read_text())["resumed"]) == 1


@pytest.mark.fashion_mnist
def test_resuming_a_finished_run_keeps_its_summary(tmp_path):
    first = fit(small(epochs=1), tmp_path, progress=False)
    again = fit(small(epochs=1), tmp_path, resume=True, progress=False)
    assert again.val_error == first.val_error and again.train_error == first.train_error


@pytest.mark.fashion_mnist
@pytest.mark.parametrize("checkpoint_every", [None, 1])
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, checkpoint_every):
    # lr 1e12 makes the loss blow up within a few steps; with a checkpoint every step, the steps between the
    # blow-up and the next logged window must not overwrite the last good checkpoint
    cfg = small(epochs=3, overrides={"batch_size": 32, "lr": 1e12}, precision="fp32", log_every=8,
                checkpoint_every=checkpoint_every)  # fmt: skip
    with pytest.raises(NonFiniteLoss, match=r"non-finite at step \d+.*last good checkpoint"):
        fit(cfg, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in state.model.values() if v.is_floating_point())
    assert (tmp_path / "metrics.csv").exists()


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "resnet21"], "unknown model 'resnet21'"),
        (["--model", "resnet20", "--data", "mnist"], "unknown data set 'mnist'.*Valid names: fashion-mnist"),
        (["--model", "resnet20", "--recipe", "adam"], "invalid choice: 'adam'"),
        (["--model", "resnet20", "--data", "{tmp}"], "no data set in"),
        (["--model", "resnet20", "--out", "{tmp}/none", "--resume"], "not a run folder"),
        (["--model", "resnet20", "--lr", "fast"], "lr='fast'"),
        (["--model", "resnet20", "--epochs", "1", "--iters", "3"], "not both"),
    ],
)
def test_bad_inputs_get_errors_that_name_the_problem_and_the_fix(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert run_cli(["train", *argv]) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.fashion_mnist
def test_resuming_a_run_of_another_model_is_refused(tmp_path):
    fit(small(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="model='resnet20', not 'resnet32'"):
        fit(small(model="resnet32", epochs=2), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        fit(small(epochs=1), tmp_path, progress=False)


@pytest.mark.fashion_mnist
def test_a_run_folder_in_use_is_refused_and_a_dead_processs_lock_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {os.getpid()}")
    with pytest.raises(ValueError, match=f"in use by process {os.getpid()}"):
        fit(small(epochs=1), tmp_path, progress=False)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {gone.pid}")
    assert fit(small(epochs=1), tmp_path, progress=False).steps == 16
    assert not (tmp_path / ".lock").exists()


@pytest.mark.fashion_mnist
def test_val_size_0_trains_without_val_and_refuses_the_plateau_schedule(tmp_path, capsys):
    argv = ["train", "--model", "resnet20", "--subset", "512", "--val-size", "0", "--batch-size", "32", "--epochs", "1"]
    assert main([*argv, "--log-every", "4", "--test", "--out", str(tmp_path)]) == 0
    assert re.search(r"train error [\d.]+%, test error [\d.]+%", capsys.readouterr().out)
    run = RunDir(tmp_path)
    summary = run.read_summary()
    assert json.loads(run.config.read_text())["data"]["sizes"] == {"train": 512, "val": 0, "test": 10_000}
    assert summary.steps == 16 and summary.val_error is None and 0 <= summary.test_error <= 1
    rows = run.read_metrics()
    assert all(r.val_error is None for r in rows) and rows[-1].images_per_second > 0
    assert main(["eval", "--run", str(tmp_path), "--split", "val"]) == 2
    assert "the val split is empty (a run trained with --val-size 0 holds none" in capsys.readouterr().err
    plateau = small(val_size=0, overrides={"batch_size": 32, "schedule": "plateau"})
    with pytest.raises(ValueError, match="plateau schedule .* --val-size 1 or more"):
        fit(plateau, tmp_path / "plateau", progress=False)


@pytest.mark.fashion_mnist
def test_a_truncated_checkpoint_is_refused_on_resume(tmp_path):
    fit(small(epochs=1), tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="damaged or truncated"):
        fit(small(epochs=2), tmp_path, resume=True, progress=False)


@pytest.mark.fashion_mnist
def test_config_file_and_command_line_resolve_in_order(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: resnet20\nsubset: 256\nval_size: 100\nbatch_size: 64\nlr: 0.05\nepochs: 1\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--lr", "0.02", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["recipe"]["batch_size"] == 64 and saved["recipe"]["lr"] == 0.02
    assert saved["train"]["subset"] == 256


@pytest.mark.fashion_mnist
def test_gradient_accumulation_takes_one_step_per_batch(tmp_path):
    summary = fit(small(epochs=1, micro_batch=8), tmp_path, progress=False)
    assert summary.steps == 16
    with pytest.raises(ValueError, match="must divide"):
        fit(small(epochs=1, micro_batch=7), tmp_path / "bad", progress=False)


@pytest.mark.fashion_mnist
def test_vgg_trains_with_the_small_head_on_fashion_mnist(tmp_path):
    summary = fit(small(model="vgg_a", iters=3, epochs=None, log_every=1), tmp_path, progress=False)
    assert summary.options["head"] == "small" and summary.options["image_size"] == 28


def test_k_micro_batches_give_the_gradient_of_the_whole_batch():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10))
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    cpu = torch.device("cpu")
    forward_backward(net, x, y, cpu, "fp32")
    whole = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    for xs, ys in zip(x.split(8), y.split(8)):
        forward_backward(net, xs, ys, cpu, "fp32", accumulate=4)
    for p, expected in zip(net.parameters(), whole):
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7)


def test_a_run_in_micro_batches_ends_with_the_weights_of_one_in_whole_batches(tmp_path):
    # no dropout and no augmentation: their random numbers are drawn per (micro-)batch, the arithmetic is not
    cfg = TrainConfig(model="vgg_a", data="synthetic", subset=96, val_size=32, iters=3, log_every=1,
                      model_options={"dropout": 0.0}, overrides={"batch_size": 32, "augment": False, "lr": 0.05},
                      deterministic=True, precision="fp32")  # fmt: skip
    whole = fit(cfg, tmp_path / "whole", progress=False)
    micro = fit(TrainConfig(**{**cfg.to_dict(), "micro_batch": 8}), tmp_path / "micro", progress=False)
    assert whole.steps == micro.steps == 3
    assert micro.train_error == pytest.approx(whole.train_error, abs=1 / 96)
    expected, got = (load_file(tmp_path / run / "model.safetensors") for run in ("whole", "micro"))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_fresh_run_in_a_folder_with_rows_but_no_checkpoint_keeps_only_its_own_rows(tmp_path):
    cfg = TrainConfig(model="resnet20", data="synthetic", image_size=8, subset=64, val_size=16, iters=4, log_every=1,
                      overrides={"batch_size": 16})  # fmt: skip
    fit(cfg, tmp_path / "a", progress=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.csv").write_text((tmp_path / "a" / "metrics.csv").read_text())  # a record's rows
    fit(dataclasses.replace(cfg, iters=2), tmp_path / "b", progress=False)
    fit(dataclasses.replace(cfg, iters=2), tmp_path / "c", progress=False)  # the same run in an empty folder
    steps = {run: [row.step for row in RunDir(tmp_path / run).read_metrics()] for run in "bc"}
    assert steps["b"] == steps["c"] and max(steps["b"]) == 2


def test_a_measurement_of_the_weights_is_read_back_without_them_and_forgotten_when_the_run_starts_again(tmp_path):
    from verydeep.experiments import layer_responses

    cfg = TrainConfig(model="resnet20", data="synthetic", image_size=8, subset=64, val_size=16, iters=2,
                      overrides={"batch_size": 16})  # fmt: skip
    fit(cfg, tmp_path / "a", progress=False)
    run = RunDir(tmp_path / "a")
    measured = layer_responses.responses.__wrapped__(run.path)  # not through the in-process cache
    assert len(measured) == 19 and all(x > 0 for x in measured)  # ResNet-20's 3x3 layers: the first and 9 blocks' 2
    run.weights.rename(tmp_path / "elsewhere.safetensors")  # a later sitting: the record kept, not the weights
    assert layer_responses.responses.__wrapped__(run.path) == measured
    calls = []
    assert run.measured("responses", {"validation_images": 1}, lambda: calls.append(1) or [1.0]) == [1.0] and calls
    assert run.measured("responses", {"validation_images": 1}, lambda: calls.append(1) or [2.0]) == [1.0]  # kept
    (tmp_path / "elsewhere.safetensors").rename(run.weights)
    run.summary.unlink()
    run.checkpoint.unlink()
    fit(cfg, run.path, progress=False)  # trained again from the start: its earlier measurements are not of it
    assert not list(run.path.glob("measure_*.json"))


def test_a_config_of_a_retired_setting_still_reads_and_an_unknown_one_is_refused():
    """--fuse-norm is gone (it never changed a run's numbers); checkpoints and config files that hold it read."""
    cfg = TrainConfig(model="resnet20", data="synthetic", seed=3)
    assert TrainConfig.from_dict({**cfg.to_dict(), "fuse_norm": True}) == cfg
    with pytest.raises(ValueError, match="unknown setting fuse_normal"):
        TrainConfig.from_dict({**cfg.to_dict(), "fuse_normal": True})


def test_a_run_with_scale_jittering_trains_on_native_crops_and_is_validated_at_q(tmp_path):
    cfg = TrainConfig(model="vgg_a", data="synthetic", subset=64, val_size=32, iters=2, log_every=1,
                      model_options={"head": "small", "width": 0.25},
                      overrides={"batch_size": 32, "small_scale": (36, 48)})  # fmt: skip
    summary = fit(cfg, tmp_path / "run", progress=False)
    assert summary.steps == 2 and summary.val_error is not None
    assert RunDir(tmp_path / "run").read_record().recipe.small_scale == (36, 48)
    with pytest.raises(ValueError, match="--small-scale 24,48 starts below synthetic's 32 px images"):
        fit(TrainConfig(**{**cfg.to_dict(), "overrides": {"small_scale": (24, 48)}}), tmp_path / "bad", progress=False)


def test_a_folder_of_small_grey_pngs_trains_at_its_own_size_with_one_channel(tmp_path):
    from PIL import Image

    for split, count in (("train", 16), ("val", 4)):
        for label, name in enumerate(("dark", "light")):
            for i in range(count):
                path = tmp_path / "pngs" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("L", (20, 20), 40 + 160 * label + i).save(path)
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet20", "--data", str(tmp_path / "pngs"), "--iters", "2", "--batch-size", "8",
            "--out", str(out), "--precision", "fp32", "--workers", "0"]  # fmt: skip
    assert run_cli(argv) == 0
    record = RunDir(out).read_record()
    assert (record.data.image_size, record.data.in_channels, record.data.in_memory) == (20, 1, True)
    assert record.model.options["in_channels"] == 1 and record.model.options["num_classes"] == 2
    assert run_cli([*argv[:-6], "--image-size", "24", "--out", str(tmp_path / "at24"), "--precision", "fp32"]) == 0
    assert RunDir(tmp_path / "at24").read_record().data.image_size == 24
    assert run_cli(["eval", "--run", str(out), "--workers", "0"]) == 0
    folder = ["--data", str(tmp_path / "pngs"), "--image-size", "20"]
    assert run_cli(["eval", "--run", str(out), *folder, "--workers", "0"]) == 0


def test_init_from_copies_as_layers_into_the_run(tmp_path):
    """--init-from a run folder of A: the new run starts with A's first four convs and FC layers (VGG Sec. 3.1).
    At lr 0 the weights it ends with are the ones it started from."""
    torch.manual_seed(1)
    net_a = verydeep.create_model("vgg_a", head="small", num_classes=10, in_channels=3, image_size=32)
    (tmp_path / "a").mkdir()
    save_weights(net_a, tmp_path / "a" / "model.safetensors")
    cfg = TrainConfig(model="vgg_d", data="synthetic", subset=64, val_size=32, iters=1, init_from=str(tmp_path / "a"),
                      overrides={"batch_size": 32, "lr": 0.0}, precision="fp32")  # fmt: skip
    fit(cfg, tmp_path / "d", progress=False)
    d = load_file(tmp_path / "d" / "model.safetensors")
    a = net_a.state_dict()
    # A's features 0, 3, 6, 8 (conv1_1, conv2_1, conv3_1, conv3_2) are D's features 0, 5, 10, 12
    for a_index, d_index in ((0, 0), (3, 5), (6, 10), (8, 12)):
        for kind in ("weight", "bias"):
            assert torch.equal(d[f"features.{d_index}.{kind}"], a[f"features.{a_index}.{kind}"])
    for index in (0, 3, 6):
        assert torch.equal(d[f"classifier.{index}.weight"], a[f"classifier.{index}.weight"])


def test_a_deterministic_run_gives_the_caller_its_process_settings_back(tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    threads = torch.get_num_threads()
    cfg = TrainConfig(model="resnet20", data="synthetic", subset=64, val_size=32, iters=1, deterministic=True,
                      overrides={"batch_size": 32}, precision="fp32")  # fmt: skip
    fit(cfg, tmp_path, progress=False)
    assert torch.backends.cudnn.benchmark is True and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == threads


def own_network(classes: int) -> torch.nn.Module:
    """A network built in Python, not in the registry: what a researcher's variant looks like to the loop."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, classes),
    )


def test_a_network_built_in_python_trains_resumes_and_keeps_a_complete_run_folder(tmp_path):
    from verydeep.data import synthetic

    cfg = TrainConfig(model="my_net", recipe="resnet_cifar", data="synthetic", subset=128, val_size=32, epochs=2,
                      log_every=1, deterministic=True, overrides={"batch_size": 32}, precision="fp32")  # fmt: skip
    straight = fit(cfg, tmp_path / "straight", progress=False, model=own_network(synthetic.NUM_CLASSES))
    with pytest.raises(Interrupted):
        fit(
            cfg, tmp_path / "stopped", on_step=interrupt_at(5), progress=False, model=own_network(synthetic.NUM_CLASSES)
        )
    resumed = fit(cfg, tmp_path / "stopped", resume=True, progress=False, model=own_network(synthetic.NUM_CLASSES))
    assert straight.model == resumed.model == "my_net" and straight.steps == resumed.steps == 8
    run = RunDir(tmp_path / "stopped")
    assert {p.name for p in run.path.iterdir()} >= {"config.json", "metrics.csv", "checkpoint.pt", "summary.json",
                                                   "model.safetensors"}  # fmt: skip
    assert json.loads(run.config.read_text())["model"]["name"] == "my_net"
    assert [r.step for r in run.read_metrics() if r.train_error is not None] == list(range(1, 9))
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run.weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_network_built_in_python_is_named_apart_from_the_registry_and_must_fit_the_data(tmp_path):
    cfg = TrainConfig(model="resnet20", data="synthetic", subset=64, val_size=32, iters=1)
    with pytest.raises(ValueError, match="names the registered model 'resnet20'"):
        fit(cfg, tmp_path / "a", progress=False, model=own_network(10))
    cfg = TrainConfig(model="my_net", data="synthetic", subset=64, val_size=32, iters=1)
    with pytest.raises(ValueError, match="no paper's recipe: give one"):
        fit(cfg, tmp_path / "b", progress=False, model=own_network(10))
    cfg = TrainConfig(model="my_net", recipe="resnet_cifar", data="synthetic", subset=64, val_size=32, iters=1)
    with pytest.raises(ValueError, match="scores 3 classes"):
        fit(cfg, tmp_path / "c", progress=False, model=own_network(3))
    assert not any(tmp_path.iterdir())  # refused runs leave no folder behind
