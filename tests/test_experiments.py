"""Every experiment's smoke preset runs end to end, and an interrupted reproduction continues where it stopped."""

import dataclasses
import functools
import json
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from verydeep.cli import main
from verydeep.config import TrainConfig
from verydeep.evidence import Looks
from verydeep.experiments import (
    EXPERIMENTS,
    ExperimentFailed,
    ExperimentInterrupted,
    get_experiment,
    reproduce,
    workers,
)
from verydeep.experiments.base import RunSpec
from verydeep.experiments.report import reproduce_command
from verydeep.experiments.runner import plan
from verydeep.runs import MetricsRow, RunDir, Summary, load_checkpoint


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``smoke(name)`` reproduces an experiment's smoke preset with two seeds once per module, into one runs
    folder shared by all, as users' are: layer_responses then reuses the degradation runs. Any test may ask
    first; ``smoke.root`` is the folder they all write into."""
    root = tmp_path_factory.mktemp("reproductions")
    done = {}

    def reproduce_once(name: str):
        if name not in done:
            done[name] = reproduce(get_experiment(name), preset="smoke", out=root / f"{name}-smoke",
                                   runs_root=root / "runs", jobs=1, seeds=2, log=lambda s: None)  # fmt: skip
        return done[name], root / f"{name}-smoke"

    @functools.cache
    def reproduce_all_once():
        from verydeep.experiments import reproduce_all

        for name in EXPERIMENTS:
            reproduce_once(name)  # trained already: reproduce all trains nothing more
        return reproduce_all(list(EXPERIMENTS.values()), "smoke", root=root, jobs=1, seeds=2, log=lambda s: None)

    reproduce_once.root = root
    reproduce_once.all = reproduce_all_once
    return reproduce_once


OUTCOMES = {"reproduced", "contradicted", "inconclusive", "not tested"}


@pytest.mark.fashion_mnist
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_smoke_preset_with_two_seeds_writes_three_valued_verdicts_with_their_intervals(smoke, name):
    result, out = smoke(name)
    assert (out / "report.md").exists() and (out / "results.csv").exists()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["seeds"] == [0, 1] and {len(runs) for runs in saved["runs"].values()} == {2}
    assert [v["key"] for v in saved["verdicts"]] == [c.key for c in EXPERIMENTS[name].claims]
    for verdict in saved["verdicts"]:
        assert verdict["outcome"] in OUTCOMES
        if verdict["outcome"] != "not tested":
            low, high = verdict["interval"]
            assert low <= verdict["difference"] <= high and verdict["seeds"] == 2
            assert len(verdict["values_a"]) == len(verdict["values_b"]) == 2
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    report = (out / "report.md").read_text()
    assert EXPERIMENTS[name].source in report and f"]({pngs[0].name})" in report
    for verdict, v in zip(saved["verdicts"], result.verdicts, strict=True):  # the report says what summary.json says
        assert verdict["evidence"] == v.evidence() and f"({v.claim.source}): {v.claim.statement}. " in report
    assert report.count(", seed ") == sum(len(runs) for runs in saved["runs"].values())  # every run listed


@pytest.mark.fashion_mnist
def test_layer_responses_and_protocols_reuse_the_degradation_runs(smoke):
    def folders(name):
        return {(label, seed): run.path for seed, by in smoke(name)[0].runs.items() for label, run in by.items()}

    degradation = folders("degradation")
    assert folders("layer_responses") == degradation
    assert folders("protocols") == {k: v for k, v in degradation.items() if k[0] == "ResNet-20"}


@pytest.mark.fashion_mnist
def test_reproduce_all_writes_an_index_with_a_row_per_claim_of_the_ledger(smoke):
    from verydeep.experiments.claims import CLAIMS

    done, index = smoke.all()
    saved = json.loads((smoke.root / "index.json").read_text())
    assert [c["key"] for c in saved["claims"]] == [c.key for c in CLAIMS]
    assert sum(saved["counts"].values()) == len(CLAIMS)
    table = index.read_text()
    assert table.count("\n| ") == len(CLAIMS) + 1  # the header and a row per claim
    for claim in CLAIMS:
        assert f"| {claim.statement} | {claim.source} |" in table
    assert "`verydeep reproduce degradation --preset smoke --seeds 2`" not in table  # smoke's own seeds: 2
    assert saved["machine"]["cpu"] and set(saved["experiments"]) == set(EXPERIMENTS)
    # kept under the preset's name too, so that a later preset's index can draw each claim's trend from it
    assert json.loads((smoke.root / "index-smoke.json").read_text()) == saved
    assert saved["budgets"] == [] and all(c["images_per_run"] > 0 for c in saved["claims"] if "difference" in c)
    # an experiment's cost is its runs' training time, even when an earlier call (or experiment) trained them
    for name, r in zip(EXPERIMENTS, done):
        total = sum(run.summary.seconds for runs in r.runs.values() for run in runs.values())
        assert saved["experiments"][name]["train_seconds"] == pytest.approx(total) and total > 0


@pytest.mark.fashion_mnist
def test_the_readmes_results_are_written_from_the_index_and_nothing_else_changes(smoke, tmp_path):
    import runpy

    smoke.all()
    tool = runpy.run_path(str(Path(__file__).parent.parent / "tools" / "readme_results.py"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{tool['BEGIN']}\nstale\n{tool['END']}\nafter\n")
    index = json.loads((smoke.root / "index.json").read_text())
    section = tool["section"]([index | {"folder": str(smoke.root)}])  # the reports beside the index it was given
    assert f"-> {smoke.root}/degradation-smoke/report.md" in section
    for claim in index["claims"]:
        assert f"| {claim['claim']} | {claim['source']} |" in section and claim["outcome"] in section
    text = readme.read_text().replace(f"{tool['BEGIN']}\nstale\n{tool['END']}", section)
    argv = ["readme_results.py", str(smoke.root / "index.json"), "--readme", str(readme)]
    with pytest.MonkeyPatch.context() as m:
        m.setattr("sys.argv", argv)
        assert tool["main"]() == 0
        assert readme.read_text() == text and "stale" not in text
        m.setattr("sys.argv", [*argv, "--check"])
        assert tool["main"]() == 0


def test_vgg_init_starts_each_from_a_run_from_the_trained_a_and_the_others_from_random(tmp_path):
    planned = plan(get_experiment("vgg_init"), "quick", "fashion-mnist", None, tmp_path, (0,), {"configs": ("D", "E")})
    folders = {spec.label: folder for spec, _, folder in planned}
    starts = {spec.label: config.init_from for spec, config, _ in planned}
    assert starts == {"A": None, "D random": None, "E random": None, "D from A": str(folders["A"]),
                      "E from A": str(folders["A"])}  # fmt: skip
    assert [spec.label for spec, _, _ in planned][-2:] == ["D from A", "E from A"]  # after A is trained
    assert len(set(folders.values())) == 5


def test_long_trains_only_the_runs_of_the_claims_it_was_picked_for_and_those_they_start_from(tmp_path):
    def labels(name, preset, **args):
        return [s.label for s, _, _ in plan(get_experiment(name), preset, "fashion-mnist", None, tmp_path, (0,), args)]

    assert labels("degradation", "long") == ["ResNet-20", "ResNet-56"]
    assert labels("degradation", "long", depths=(32, 110)) == ["ResNet-32", "ResNet-110"]
    assert labels("degradation", "standard") == ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]
    assert labels("vgg_depth", "long") == ["A", "D"]  # D from the A of its seed
    assert len(labels("vgg_depth", "standard")) == 10
    vgg = get_experiment("vgg_depth")
    only = dataclasses.replace(vgg.presets["quick"], claims=("vgg-table3-d-beats-c",))
    with pytest.MonkeyPatch.context() as m:
        m.setitem(vgg.presets, "quick", only)
        assert labels("vgg_depth", "quick") == ["A", "C", "D"]  # C and D start from A, which is trained first
    for name in ("layer_responses", "protocols", "gradients"):  # they measure plain nets, which long leaves out
        assert "long" not in get_experiment(name).presets and "standard" in get_experiment(name).presets


def test_each_run_is_configured_from_its_experiment_preset_and_spec(tmp_path):
    """What the runner trains: the preset's length, subset and overrides under the spec's own, the model options
    of both, the spec's recipe or else the experiment's, the data and seed asked for, never the test split."""
    experiment = get_experiment("degradation")
    quick = experiment.presets["quick"]
    planned = plan(experiment, "quick", "cifar10", "/data/cifar", tmp_path, (3,), {"depths": (20, 56)})
    assert len(planned) == 4
    for spec, config, folder in planned:
        assert (config.model, config.data, config.data_dir, config.seed) == (spec.model, "cifar10", "/data/cifar", 3)
        assert (config.epochs, config.subset, config.val_size) == (quick.epochs, quick.subset, quick.val_size)
        assert config.log_every == quick.log_every and config.test is False and config.recipe == "resnet_cifar"
        assert config.overrides == {**quick.overrides, **spec.overrides} == {"batch_size": 32, "lr": 0.025}
        assert config.model_options == {}  # the paper's initialisation: Fig. 7's responses are measured on these
        assert folder.parent == tmp_path
    vgg = get_experiment("vgg_depth")
    ((spec, config, _),) = plan(vgg, "quick", "fashion-mnist", None, tmp_path, (0,), {"configs": ("A",)})
    assert config.recipe == "vgg" and config.model_options == {"init": "kaiming", "width": 0.25}
    assert config.data_dir is None
    imagenet = plan(experiment, "smoke", "fashion-mnist", None, tmp_path, (0,), {"depths": (18, 34)})
    assert {config.recipe for _, config, _ in imagenet} == {"resnet_imagenet"}


@pytest.mark.fashion_mnist
def test_an_interrupted_reproduction_continues_where_it_stopped(tmp_path, monkeypatch):
    real_fit = workers.fit
    calls, interrupted_once = [], []

    def fit_interrupting_the_second_run(config, folder, resume=False, **kw):
        calls.append((config.model, resume))
        if len(calls) == 2 and not interrupted_once:
            interrupted_once.append(True)
            kw["on_step"] = lambda step: step == 3 and os.kill(os.getpid(), signal.SIGINT)
        return real_fit(config, folder, resume=resume, progress=False, **kw)

    monkeypatch.setattr(workers, "fit", fit_interrupting_the_second_run)
    experiment = get_experiment("shortcuts")
    with pytest.raises(ExperimentInterrupted):
        reproduce(experiment, preset="smoke", out=tmp_path / "exp", jobs=1, seeds=1, log=lambda s: None)
    interrupted = [f for f in (tmp_path / "runs").iterdir() if not RunDir(f).summary.exists()]
    assert len(interrupted) == 1 and RunDir(interrupted[0]).load_checkpoint().step == 3
    calls.clear()
    reproduce(experiment, preset="smoke", out=tmp_path / "exp", jobs=1, seeds=1, log=lambda s: None)
    assert calls == [("resnet20", True), ("resnet20", False)]  # the first run is not trained again


def test_reproduce_lists_experiments_and_rejects_unknown_ones(capsys):
    assert main(["reproduce", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXPERIMENTS) and "smoke" in listing
    assert main(["reproduce", "degredation"]) == 2
    assert "Did you mean degradation" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "vgg_depth", "--depths", "20"], "vgg_depth takes no --depths; its arguments: --configs"),
        (["reproduce", "vgg_depth", "--configs", "A,F"], "unknown VGG configuration F"),
        (["reproduce", "vgg_init", "--configs", "A"], "deeper configurations B, C, D, E"),
        (["reproduce", "degradation", "--configs", "A"], "degradation takes no --configs; its arguments: --depths"),
        (["reproduce", "shortcuts", "--depths", "20,56"], "give one depth"),
        (["reproduce", "degradation", "--depths", "20,34"], "mixes ImageNet depths"),
    ],
)
def test_reproduce_refuses_arguments_an_experiment_cannot_use(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "exp")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything was trained


def test_imagenet_degradation_compares_parameter_free_shortcuts():
    experiment = get_experiment("degradation")
    specs = experiment.runs({"depths": (18, 34)}, experiment.presets["quick"])
    assert {s.options.get("shortcut") for s in specs if s.group == "ResNet"} == {"A"}  # ResNet Sec. 4.1, Fig. 4
    assert {s.recipe for s in specs} == {"resnet_imagenet"}


def test_the_report_gives_the_shortest_command_that_reproduces_it():
    experiment = get_experiment("degradation")
    short = reproduce_command(experiment, "quick", "fashion-mnist", (0, 1, 2, 3, 4), dict(experiment.defaults))
    assert short == ["verydeep", "reproduce", "degradation", "--preset", "quick"]  # quick's own five seeds
    long = reproduce_command(experiment, "quick", "cifar10", (3, 4), {"depths": (20, 110)})
    assert long[5:] == ["--data", "cifar10", "--seeds", "2", "--seed", "3", "--depths", "20,110"]


def test_a_run_is_keyed_by_what_decides_it_so_vgg16_and_vgg_d_share_one():
    from verydeep.experiments.base import run_key
    from verydeep.train import TrainConfig

    base = TrainConfig(model="vgg_d", subset=128, epochs=1, overrides={"lr": 0.05, "milestones": (0.5,)})
    same = TrainConfig(model="vgg16", subset=128, epochs=1, overrides={"lr": "0.05", "milestones": [0.5]})
    assert run_key(same) == run_key(base) and run_key(base).startswith("vgg_d-")
    for different in ({"seed": 1}, {"epochs": 2}, {"iters": 10}, {"overrides": {"lr": 0.01}}, {"model": "vgg_e"},
                      {"overrides": {"lr": 0.05, "milestones": (0.5,), "small_scale": (32, 64)}}):  # fmt: skip
        assert run_key(TrainConfig(**{**base.to_dict(), **different})) != run_key(base), different


def test_drawing_a_figure_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    import importlib

    import matplotlib

    from verydeep.experiments import plots

    previous = dict.__getitem__(matplotlib.rcParams, "backend")  # read raw: the usual way would resolve it
    matplotlib.use("svg")  # the caller's choice, which importing and drawing must keep
    try:
        importlib.reload(plots)
        path = plots.bars(["A", "B"], [[1.0, 1.5], [2.0, 2.5]], tmp_path / "bars.png", "error (%)")
        assert path.read_bytes().startswith(b"\x89PNG") and matplotlib.get_backend() == "svg"
    finally:
        dict.__setitem__(matplotlib.rcParams, "backend", previous)


def test_run_keys_are_the_model_and_eight_hex_digits_whatever_the_order_of_the_options():
    from verydeep.experiments.base import run_key
    from verydeep.train import TrainConfig

    one = TrainConfig(model="resnet20", model_options={"shortcut": "B", "zero_init_residual": True})
    other = TrainConfig(model="resnet20", model_options={"zero_init_residual": True, "shortcut": "B"})
    assert re.fullmatch(r"resnet20-[0-9a-f]{8}", run_key(one)) and run_key(one) == run_key(other)


def test_a_presets_val_size_reaches_its_runs(tmp_path):
    from verydeep.experiments.base import Preset, RunSpec, run_config

    config = run_config(get_experiment("degradation"), Preset("held out", val_size=1000, subset=2000),
                        RunSpec("plain-20", "plain20"), "fashion-mnist", None, 0)  # fmt: skip
    assert (config.val_size, config.subset, config.test) == (1000, 2000, False)


def test_a_trained_run_is_loaded_with_its_summary_and_metrics_and_counts_as_finished_once_it_has_a_summary(tmp_path):
    from verydeep.experiments.base import RunSpec, finished, load_result

    run = RunDir(tmp_path / "run")
    run.create()
    run.append_metrics([MetricsRow(10, 0.5, 0.1, train_error=0.5), MetricsRow(20, 1, 0.1, val_error=0.4)])
    assert not finished(run.path)
    summary = Summary("plain20", {}, "fashion-mnist", "resnet_cifar", 1.0, 20, 0.5, 0.4, 0.1, 5000, 3.0, 100.0,
                      "fp32", "cpu")  # fmt: skip
    run.write_summary(summary)
    spec = RunSpec("plain-20", "plain20")
    result = load_result(spec, run.path)
    assert finished(run.path) and result.spec is spec and result.path == run.path
    assert result.summary == summary
    assert result.series("val_error") == ([20], [0.4]) and result.series("train_error") == ([10], [0.5])


def worker_runs(tmp_path, iters: int = 200, **settings):
    """Two short runs on generated images, for the worker processes to train side by side."""
    configs = [TrainConfig(model="resnet20", data="synthetic", subset=256, val_size=64, iters=iters, seed=seed,
                           overrides={"batch_size": 8}, precision="fp32", log_every=5, **settings)
               for seed in (0, 1)]  # fmt: skip
    return [(RunSpec(f"run-{seed}", "resnet20"), c, tmp_path / f"run-{seed}") for seed, c in enumerate(configs)]


def test_workers_stop_at_a_checkpoint_on_a_signal_and_continue_where_they_stopped(tmp_path):
    todo = worker_runs(tmp_path)
    runs = [RunDir(folder) for _, _, folder in todo]

    def interrupt_once_both_train():
        while not all(run.last_step() >= 5 for run in runs):
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_both_train, daemon=True).start()
    lines = []
    with pytest.raises(ExperimentInterrupted, match="every run's checkpoint is saved"):
        workers.Workers(2, 1, lines.append).train(todo)
    stopped = [load_checkpoint(run.checkpoint).step for run in runs]
    assert all(5 <= step < 200 for step in stopped) and not any(run.summary.exists() for run in runs)
    assert sorted(line.split(" (")[0] for line in lines if ": interrupted" in line) == [
        "run-0: interrupted", "run-1: interrupted"]  # fmt: skip
    assert [workers.progress(run.path) for run in runs] == [f"step {run.last_step()}/200" for run in runs]
    assert all("step 5/200" in run.log.read_text() for run in runs)  # each worker printed into its own log

    workers.Workers(2, 1, lines.append).train(todo)
    for run in runs:
        assert run.read_summary().steps == 200 and run.read_record().resumed[0]["step"] > 0
        steps = [r.step for r in run.read_metrics() if not r.is_epoch]
        assert steps == sorted(set(steps)) and steps[-1] == 200  # each window logged once, none lost


def test_a_failing_worker_is_named_with_its_error_and_its_log(tmp_path):
    (spec, config, folder), _ = worker_runs(tmp_path, iters=4, data_dir=str(tmp_path / "nowhere"))
    config.data = "cifar10"
    with pytest.raises(ExperimentFailed, match=r"run-0 failed: .*cifar.*run-0/train.log"):
        workers.Workers(2, 1, lambda line: None).train([(spec, config, folder)])
    assert "Traceback" in RunDir(folder).log.read_text()


def planted(claim, i: int):
    """Values for claim number ``i`` of the ledger that decide it one way, in turn reproduced, contradicted,
    inconclusive, with a mean of its own (0.1 + 0.003 i) on side a, so that each row can be told apart."""
    outcome = ("reproduced", "contradicted", "inconclusive")[i % 3]
    a = [0.1 + 0.003 * i + e for e in (-0.0005, 0.0, 0.0005)]
    gap = {"lower": 0.2, "higher": -0.2, "equivalent": 0.0, "not higher": 0.0}[claim.relation]
    if outcome == "contradicted":
        gap = -gap if claim.relation in ("lower", "higher") else 10 * claim.margin
        gap = -gap if claim.relation == "not higher" else gap  # b below a by far: a far higher
    b = [x + gap for x in a]
    if outcome == "inconclusive":
        b = [a[0] - 0.3, a[1], a[2] + 0.3]
    return outcome, a, b


@pytest.mark.fashion_mnist
def test_every_rendered_row_carries_its_own_claims_verdict(smoke, tmp_path):
    # index.md, report.md and the README's table from planted verdicts of mixed outcomes: a verdict moved onto
    # another claim's row (its mark, or its numbers) is caught in each of the three
    import dataclasses
    import runpy

    from verydeep.evidence import decide
    from verydeep.experiments.base import Verdict
    from verydeep.experiments.claims import CLAIMS
    from verydeep.experiments.report import MARKS, write_experiment, write_index

    done, _ = smoke.all()
    order = {c.key: i for i, c in enumerate(CLAIMS)}
    expected, remade = {}, []
    for r in done:
        verdicts = []
        for v in r.verdicts:
            if v.outcome == "not tested":
                verdicts.append(v)
                expected[v.claim.key] = ("not tested", None, None)
                continue
            outcome, a, b = planted(v.claim, order[v.claim.key])
            got, difference = decide(a, b, v.claim.relation, v.claim.margin)
            assert got == outcome, v.claim.key  # the planted values decide as meant
            verdicts.append(Verdict(v.claim, v.a, v.b, got, difference, tuple(a), tuple(b), v.quantity))
            expected[v.claim.key] = (
                got,
                v.quantity.format(difference.mean_a),
                v.quantity.format_difference(difference.value),
            )
        remade.append(dataclasses.replace(r, verdicts=verdicts))
    assert {o for o, *_ in expected.values()} == set(MARKS)
    root = tmp_path / "reproductions"
    for r in remade:
        (root / r.experiment.name).mkdir(parents=True)
        write_experiment(root / r.experiment.name, r)
    index_md, index_json = write_index(root, remade, "smoke")
    tool = runpy.run_path(str(Path(__file__).parent.parent / "tools" / "readme_results.py"))
    readme = tool["section"]([json.loads(index_json.read_text())])
    reports = "\n".join((root / r.experiment.name / "report.md").read_text() for r in remade)

    def line_of(text: str, claim) -> str:
        lines = [line for line in text.splitlines() if claim.statement in line and claim.source in line]
        assert len(lines) == 1, (claim.key, lines)
        return lines[0]

    for claim in CLAIMS:
        outcome, mean_a, difference = expected[claim.key]
        for name, text in (("index.md", index_md.read_text()), ("report.md", reports), ("README", readme)):
            line = line_of(text, claim)
            assert f"**{MARKS[outcome]}**" in line, (name, claim.key, line)
            others = {f"**{m}**" for o, m in MARKS.items() if o != outcome}
            assert not any(mark in line for mark in others), (name, claim.key, line)
            if mean_a is not None:
                assert f"{claim.a.split('{')[0]}" in line, (name, claim.key, line)
                shown = f" {difference} [" if name == "README" else f" {mean_a} ± "  # the README: the difference
                assert shown in line, (name, claim.key, line)


def test_a_figures_curve_is_the_mean_over_seeds_in_a_band_that_holds_every_seed():
    from verydeep.experiments import plots

    def result(errors: dict[int, float]) -> "plots.RunResult":
        rows = [MetricsRow(step, step / 10, 0.1, 1.0, e) for step, e in errors.items()]
        return plots.RunResult(RunSpec("x", "resnet20"), Path("."), None, rows)

    seeds = [result({10: 0.5, 20: 0.4, 30: 0.3}), result({10: 0.7, 20: 0.2, 30: 0.1, 40: 0.05})]
    steps, mean, low, high = plots.mean_band(seeds, "train_error")
    assert steps == [10, 20, 30]  # the steps every seed logged
    assert mean == pytest.approx([0.6, 0.3, 0.2]) and low == [0.5, 0.2, 0.1] and high == [0.7, 0.4, 0.3]


def test_the_gradient_norms_at_initialisation_are_those_of_the_network_the_run_trained(tmp_path):
    # the network rebuilt from the run's seed is the one setup.resolve built; one norm per conv layer
    import torch

    from verydeep.data import load_data
    from verydeep.device import Distributed
    from verydeep.experiments import gradients
    from verydeep.setup import resolve
    from verydeep.train import fit

    cfg = TrainConfig(model="plain20", data="synthetic", subset=160, val_size=32, iters=2, seed=7, precision="fp32",
                      overrides={"batch_size": 32})  # fmt: skip
    fit(cfg, tmp_path, progress=False)
    built = resolve(cfg, Distributed.from_env(), torch.device("cpu")).model  # what fit trained from
    data = load_data("synthetic", subset=160, val_size=32)
    batch = next(iter(data.batches("train", gradients.BATCH, seed=7, augment=False)))
    norms = gradients.norms(tmp_path)
    assert norms["initialisation"] == pytest.approx(gradients.conv_gradient_norms(built, *batch), rel=1e-6)
    assert len(norms["initialisation"]) == len(norms["end of training"]) == 19  # plain-20: 19 convs, then the fc
    assert norms["initialisation"] != norms["end of training"]


def test_the_gradient_readings_are_the_worst_of_the_two_moments(monkeypatch):
    from verydeep.experiments import gradients

    runs = {Path("x"): {"initialisation": (2000.0, 20.0, 2.0), "end of training": (0.1, 4.0, 2.0)}}
    monkeypatch.setattr(gradients, "norms", lambda folder: runs[folder])
    result = type("R", (), {"path": Path("x")})()
    assert gradients.floor(result, {}) == pytest.approx(math.log10(0.05))  # the end's first layer, 5% of the last
    assert gradients.spread(result, {}) == pytest.approx(3.0)  # initialisation: 2000 over 2


@pytest.mark.fashion_mnist
def test_a_later_look_trains_only_the_open_claims_runs_and_a_decided_claim_keeps_its_first_verdict(smoke, tmp_path):
    smoke("degradation")  # seeds 0 and 1 are trained already: the second look trains seed 2 alone
    by_seed = {"plain-56": (0.5, 0.5, 0.5), "plain-20": (0.2, 0.2, 0.2),
               "ResNet-56": (0.100, 0.102, 0.101), "ResNet-20": (0.101, 0.100, 0.102)}  # fmt: skip

    def planted(result, runs):
        return by_seed[result.spec.label][RunDir(result.path).read_record().train.seed]

    experiment = get_experiment("degradation")
    smoke_preset = dataclasses.replace(experiment.presets["smoke"], seeds=2, looks=Looks((2, 3)),
                                       readings={"resnet-fig6-resnet-deeper-better": "tail_train_error"})  # fmt: skip
    quantities = {name: dataclasses.replace(q, measure=planted) for name, q in experiment.quantities.items()}
    experiment = dataclasses.replace(experiment, presets={"smoke": smoke_preset}, quantities=quantities)
    logged = []
    r = reproduce(experiment, preset="smoke", out=tmp_path / "looks", runs_root=smoke.root / "runs", jobs=1,
                  log=logged.append)  # fmt: skip
    assert r.seeds == (0, 1) and sorted(r.runs[2]) == ["ResNet-20", "ResNet-56"]
    verdicts = {v.claim.key: v for v in r.verdicts}
    reversal = verdicts["resnet-fig6-resnet-deeper-better"]
    assert reversal.values_a == by_seed["ResNet-56"] and reversal.outcome == "inconclusive"
    assert reversal.difference.level == pytest.approx(0.975) and reversal.difference.df == 2.0
    degrades = verdicts["resnet-fig6-plain-degrades"]
    assert degrades.outcome == "reproduced" and degrades.values_a == (0.5, 0.5)  # decided at the first look
    assert any("training ResNet-20, ResNet-56 on seed 2" in line for line in logged)
    summary = json.loads((tmp_path / "looks" / "summary.json").read_text())
    assert [run["seed"] for run in summary["runs"]["ResNet-56"]] == [0, 1, 2]
    assert [run["seed"] for run in summary["runs"]["plain-56"]] == [0, 1]
    report = (tmp_path / "looks" / "report.md").read_text()
    assert "seeds 2 then 3 a side while the claim is open" in report and "ResNet-56, seed 2:" in report
    assert reversal.claim.quantity == "tail_train_error" and degrades.claim.quantity == "train_error"
    (line,) = [line for line in report.splitlines() if "residual learning reverses the degradation" in line]
    assert "Deviation: this preset reads it as the train error % over the last tenth" in line


@pytest.mark.parametrize("command", ["list", "summary", "train", "bench", "reproduce", "calibrate", "eval", "predict",
                                     "export"])  # fmt: skip
def test_every_commands_help_is_printed(command, capsys):
    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0 and "usage: verydeep" in capsys.readouterr().out
