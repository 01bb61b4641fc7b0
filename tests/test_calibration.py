"""The calibration study: its runs are ordinary run folders trained once, its record keeps what the report needs
when the folders are gone, and its table states each cell's readings and differences as the runs measured them."""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics

import pytest

from verydeep.cli import main
from verydeep.experiments import calibration
from verydeep.experiments.base import RunSpec
from verydeep.experiments.calibration import COSINE, STEP, Record, Regime, Study
from verydeep.runs import RunDir

TINY = Study(
    claim="resnet-fig6-resnet-deeper-better",
    title="ResNet-20 against plain-20 (a pipeline check)",
    a=RunSpec("ResNet-20", "resnet20"),
    b=RunSpec("plain-20", "plain20"),
    relation="lower",
    recipe="resnet_cifar",
    overrides={"batch_size": 32, "lr": 0.05},
    regimes=(Regime("64-step", 64, STEP), Regime("32-cosine", 32, {**COSINE, "augment": False})),
    budgets=(64, 128),
    log_every=1,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    record = Record(root / "docs" / "calibration" / "tiny.json")
    calibration.train(TINY, root / "runs", record, jobs=1, data="synthetic", log=lambda line: None)
    return root, record


def test_every_cell_is_trained_once_on_the_calibration_seeds_cheapest_budget_first(trained):
    root, record = trained
    runs = list(record.runs.values())
    assert len(runs) == 2 * 2 * 2 * 2  # regimes x budgets x seeds x the two nets
    assert {r["seed"] for r in runs} == {100, 101}  # never a verdict's seeds
    for r in runs:
        regime = next(g for g in TINY.regimes if g.name == r["regime"])
        assert r["steps"] == r["budget"] // 32  # budget / subset epochs of batch 32
        config = RunDir(root / "runs" / r["key"]).read_record().train
        assert config.subset == regime.subset and config.seed == r["seed"]
    folders = sorted(p.name for p in (root / "runs").iterdir())
    calibration.train(TINY, root / "runs", record, jobs=1, data="synthetic", log=lambda line: None)
    assert sorted(p.name for p in (root / "runs").iterdir()) == folders  # nothing trained twice


def test_the_readings_are_the_runs_own(trained):
    root, record = trained
    for r in record.runs.values():
        run = RunDir(root / "runs" / r["key"])
        assert r["readings"]["last"] == run.read_summary().train_error
        windows = [m.train_error for m in run.read_metrics() if m.train_error is not None]
        assert min(windows) <= r["readings"]["tail"] <= max(windows)
        evaluated = json.loads((run.path / "eval_train_center.json").read_text())  # the whole training split
        subset = next(g.subset for g in TINY.regimes if g.name == r["regime"])
        assert r["readings"]["whole"] == evaluated["error"] and evaluated["images"] == subset


def test_the_report_gives_every_cell_its_differences_and_survives_the_loss_of_the_run_folders(trained, tmp_path):
    root, record = trained
    shutil.copytree(root / "docs", tmp_path / "docs")
    gone = tmp_path / "runs"  # a new machine: no run folder, only the committed record
    out = calibration.write_report({"tiny": TINY}, gone, tmp_path / "docs" / "calibration.md", "synthetic", reps=500)
    text = out.read_text()
    assert "The rule that picks a preset's regime" in text and "The rule picks: **" in text
    rows = [line for line in text.splitlines() if line.startswith(("| 64-step (", "| 32-cosine ("))]
    assert len(rows) == 2 * 2 * 3  # regimes x budgets x readings
    rule_rows = [line for line in text.splitlines() if line.startswith(("| 64-step |", "| 32-cosine |"))]
    assert len(rule_rows) == 2 * 2 * 3 and "What the rule finds" in text  # and the rule's view of each
    by_cell = calibration.paired(TINY, Record(tmp_path / "docs" / "calibration" / "tiny.json"))
    for (regime, budget), seeds in by_cell.items():
        for name in TINY.readings:
            diffs = [100 * (a["readings"][name] - b["readings"][name]) for a, b in seeds.values()]
            row = next(r for r in rows if r.startswith(f"| {regime} ") and f"| {budget:,} | {name} |" in r)
            assert ", ".join(f"{d:+.2f}" for d in diffs) in row
            assert f"{statistics.fmean(diffs):+.2f} [" in row
    for png in ("tiny-curves.png", "tiny-differences.png"):
        assert (tmp_path / "docs" / "calibration" / png).read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_study_is_one_line(capsys):
    assert main(["calibrate", "no-such-study"]) == 2
    assert capsys.readouterr().err.strip() == (
        "verydeep calibrate: error: no study 'no-such-study'; valid: all, resnet-reversal, vgg-d-vs-a"
    )


def test_a_net_that_starts_from_the_other_is_pointed_at_that_run_of_its_own_regime_and_seed(tmp_path):
    study = calibration.STUDIES["vgg-d-vs-a"]
    for cell, planned in calibration.cells(study, "fashion-mnist", None, tmp_path):
        (d, d_config, d_folder), (a, a_config, a_folder) = planned
        assert (d.label, a.label) == ("D", "A") and (cell.folder_a, cell.folder_b) == (d_folder, a_folder)
        assert d_config.init_from == str(a_folder) and a_config.init_from is None
        assert d_config.seed == a_config.seed == cell.seed and d_config.subset == a_config.subset


def hand_made_record(tmp_path, cells: dict, readings=("last",)) -> Record:
    """cells: (regime, budget) -> (a's readings per seed, b's, seconds a run); every reading the same."""
    record = Record(tmp_path / "hand.json")
    for (regime, budget), (a, b, seconds) in cells.items():
        for seed, (x, y) in zip(calibration.SEEDS, zip(a, b)):
            for label, value in (("ResNet-56", x), ("ResNet-20", y)):
                key = f"{label}-{regime}-{budget}-{seed}"
                record.add({"key": key, "label": label, "regime": regime, "budget": budget, "seed": seed,
                            "readings": dict.fromkeys(readings, value), "seconds": seconds})  # fmt: skip
    return record


HAND = Study(
    claim="resnet-fig6-resnet-deeper-better", title="hand-made", a=RunSpec("ResNet-56", "resnet56"),
    b=RunSpec("ResNet-20", "resnet20"), relation="lower", recipe="resnet_cifar", overrides={},
    regimes=(Regime("2k", 2_000, STEP), Regime("8k", 8_000, STEP)), budgets=(10, 30), readings=("last",),
    experiment="degradation", pairs=2.0,
)  # fmt: skip


def test_the_rule_takes_the_cheapest_cell_on_the_papers_side_that_its_seeds_and_time_allow(tmp_path):
    cells = {
        ("2k", 10): ([0.11, 0.12], [0.10, 0.10], 30),  # the wrong side: never eligible
        ("2k", 30): ([0.10, 0.11], [0.12, 0.13], 300),  # 3 seeds x 1.5 = 5; 10 minutes a pair x 2 x 8 = 160: long
        ("8k", 30): ([0.10, 0.14], [0.12, 0.16], 30),  # the paper's side, but far too spread for 8 seeds
        ("8k", 10): ([0.20, 0.21], [0.25, 0.26], 30),  # 2 seeds x 1.5, at least 3; 1 minute x 2 x 8 = 16: both
    }
    record = hand_made_record(tmp_path, cells)
    found = {(c.regime.name, c.budget): c for c in calibration.choices(HAND, record)}
    assert found[("2k", 10)].fits == () and found[("2k", 10)].needed is None
    assert found[("2k", 30)].needed == 5 and found[("2k", 30)].minutes == pytest.approx(160)
    assert found[("2k", 30)].fits == ("long",)
    assert found[("8k", 30)].needed > 8 and found[("8k", 30)].fits == ()
    assert found[("8k", 10)].needed == 3 and found[("8k", 10)].fits == ("standard", "long")
    assert (
        calibration.pick(HAND, record, "standard").regime.name,
        calibration.pick(HAND, record, "standard").budget,
    ) == ("8k", 10)
    del cells[("8k", 10)]
    record = hand_made_record(tmp_path, cells)
    assert calibration.pick(HAND, record, "standard") is None  # rule 3: standard keeps its regime
    chosen = calibration.pick(HAND, record, "long")
    assert (chosen.regime.name, chosen.budget, chosen.reading) == ("2k", 30, "last")
    assert "`long` (share 600 core-minutes): **2k**" in "\n".join(calibration.rule_section(HAND, record))


def test_the_rule_breaks_ties_towards_the_paper_and_counts_its_limits_inclusively(tmp_path, monkeypatch):
    two = ([0.20, 0.21], [0.25, 0.26], 30)  # 3 seeds needed, 16 core-minutes at 8 seeds
    study = dataclasses.replace(HAND, readings=("last", "tail"), paper_readings=("last", "tail"), regimes=(
        Regime("2k", 2_000, STEP), Regime("8k", 8_000, STEP), Regime("8k-cos", 8_000, COSINE),
        Regime("8k-noaug", 8_000, {**STEP, "augment": False})), budgets=(10, 20, 30))  # fmt: skip
    pick = lambda record, preset="long": calibration.pick(study, record, preset)  # noqa: E731
    cells = {("8k-cos", 10): two, ("8k-noaug", 10): two, ("2k", 10): two}
    chosen = pick(hand_made_record(tmp_path, cells, study.readings))
    assert (chosen.regime.name, chosen.reading) == ("2k", "last")  # the step schedule with augmentation
    cells[("8k", 10)] = two
    chosen = pick(hand_made_record(tmp_path, cells, study.readings))
    assert (chosen.regime.name, chosen.reading) == ("8k", "last")  # then more distinct images, the first reading
    # fewer images in all (seeds needed x images a run) beats a cell that needs fewer seeds on longer runs
    cells = {("2k", 30): two, ("8k", 10): ([0.20, 0.22], [0.25, 0.26], 30)}  # 8k: 5 seeds x 10 < 3 x 30
    assert pick(hand_made_record(tmp_path, cells, study.readings)).regime.name == "8k"
    # a stand-in reading stands in only where no cell read the paper's way is eligible
    stand_in = dataclasses.replace(study, paper_readings=("tail",))
    record = hand_made_record(tmp_path, {("2k", 10): two}, study.readings)
    assert calibration.pick(stand_in, record, "long").reading == "tail"
    # the limits: 8 seeds and the share itself are within them; an experiment with no share fits nowhere
    monkeypatch.setitem(calibration.SHARES, "long", {"degradation": 16.0})
    assert pick(record) is not None and pick(record, "standard").budget == 10  # 16 core-minutes: both
    monkeypatch.setitem(calibration.SHARES, "long", {"degradation": 15.9})
    assert pick(record) is None
    assert all(c.fits == () for c in calibration.choices(dataclasses.replace(study, experiment="x"), record))
    eight = {("2k", 10): ([0.20, 0.21], [0.2115, 0.2245], 30)}  # 5 seeds x 1.5: 8
    needed = {c.needed for c in calibration.choices(study, hand_made_record(tmp_path, eight, study.readings))}
    assert needed == {8} and pick(hand_made_record(tmp_path, eight, study.readings), "standard") is not None


def test_the_rule_reads_the_papers_side_of_a_claim_that_something_is_higher(tmp_path):
    higher = dataclasses.replace(HAND, relation="higher")
    one_seed_first = {("2k", 10): ([0.30], [0.20], 30), ("8k", 10): ([0.30, 0.31], [0.20, 0.21], 30)}
    record = hand_made_record(tmp_path, one_seed_first)
    (choice,) = calibration.choices(higher, record)  # a cell of one seed is left out, the others kept
    assert choice.regime.name == "8k" and choice.needed == 3 and "standard" in choice.fits
    assert calibration.choices(HAND, record)[0].needed is None  # the same cell, read as "lower": the wrong side
    zero = hand_made_record(tmp_path, {("8k", 10): ([0.20, 0.21], [0.20, 0.20], 30)})
    assert calibration.choices(higher, zero)[0].needed is None  # a seed with no difference is on neither side


def test_a_regime_that_names_no_schedule_or_augmentation_is_the_papers_step_schedule_with_augmentation(tmp_path):
    two = ([0.20, 0.21], [0.25, 0.26], 30)
    study = dataclasses.replace(HAND, regimes=(Regime("8k", 8_000), Regime("8k-cos", 8_000, COSINE),
                                               Regime("8k-noaug", 8_000, {"augment": False})))  # fmt: skip
    record = hand_made_record(tmp_path, {("8k-cos", 10): two, ("8k-noaug", 10): two, ("8k", 10): two})
    assert calibration.pick(study, record, "long").regime.name == "8k"
    tie = hand_made_record(tmp_path, {("8k", 10): ([0.20, 0.21], [0.20, 0.22], 30)})  # one seed's difference is 0
    assert calibration.choices(study, tie)[0].needed is None  # "lower" is not met by a tie


def test_the_page_sets_the_verdict_seeds_beside_the_calibration_and_prices_what_would_decide_an_open_claim(tmp_path):
    study = calibration.STUDIES["resnet-reversal"]
    record = Record(calibration.DOCS / "resnet-reversal.json")  # the committed record: long's cell is picked
    assert calibration.verdict_section(study, record, tmp_path / "results") == [
        "What the verdict seeds gave at the presets built from this study:", "",
        "- `long`: its verdict seeds have not run (`verydeep reproduce degradation --preset long --out results/long`).",
        "",
    ]  # fmt: skip
    folder = tmp_path / "results" / "long" / "degradation-long"
    folder.mkdir(parents=True)
    a, b = [0.060, 0.070, 0.065], [0.064, 0.066, 0.068]  # -0.10 points apart, the spreads 0.5 and 0.2
    runs = {label: [{"seed": s, "folder": f"results/long/runs/{label}-{s}", "seconds": seconds} for s in range(3)]
            for label, seconds in (("ResNet-56", 2400.0), ("ResNet-20", 1200.0))}  # fmt: skip
    verdict = {"key": study.claim, "a": "ResNet-56", "b": "ResNet-20", "outcome": "inconclusive", "values_a": a,
               "values_b": b, "mean_a": statistics.fmean(a), "std_a": statistics.stdev(a), "mean_b": 0.066,
               "std_b": 0.002, "difference": -0.001, "interval": [-0.02, 0.018], "level": 0.975}  # fmt: skip
    other = {**verdict, "key": "resnet-fig6-degradation", "outcome": "reproduced"}
    (folder / "summary.json").write_text(json.dumps({"verdicts": [other, verdict], "runs": runs}))
    (text,) = [line for line in calibration.verdict_section(study, record, tmp_path / "results") if line][1:]
    assert text.startswith("- `long`, verdict seeds 0-2 (results/long/degradation-long/report.md): ResNet-56 6.50 "
                           "± 0.50 against ResNet-20 6.60 ± 0.20, difference -0.10 points, 97.5% interval [-2.00, "
                           "+1.80]: **inconclusive**. The calibration seeds had measured -0.45, -0.85")  # fmt: skip
    n = calibration.seeds_to_decide(calibration.welch(a, b), "lower")
    # a pair of runs: 40 + 20 core-minutes; no run record here, so no CPU to name
    assert f"about {n} seeds a side would decide it" in text and n > 8
    assert f"{n:.0f} core-hours ({n / 2:.1f} hours on 2 cores) at the 60 core-minutes a pair of its runs took on " \
           "CPU not recorded" in text  # fmt: skip
    assert "--preset full --data cifar10` on a GPU would decide it" in text
    (folder / "summary.json").write_text(json.dumps({"verdicts": [{**verdict, "outcome": "reproduced"}], "runs": runs}))
    (text,) = [line for line in calibration.verdict_section(study, record, tmp_path / "results") if line][1:]
    assert "**reproduced**" in text and "would decide it" not in text
