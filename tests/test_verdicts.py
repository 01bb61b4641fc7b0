"""Verdicts over seeds on hand-made results: the statistics against cases computed by hand and against tables, each
quantity measured on runs made to give a known value, and every claim of the ledger read in the paper's direction
-- written out here from the papers, not from the ledger -- as reproduced, the reverse as contradicted, a tie as
inconclusive."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats

from verydeep import evidence
from verydeep.evidence import decide, t_quantile, welch
from verydeep.experiments import (
    EXPERIMENTS,
    calibration,
    degradation,
    layer_responses,
    protocols,
    vgg_depth,
    vgg_init,
    warmup,
)
from verydeep.experiments.base import (
    Preset,
    Quantity,
    RunResult,
    RunSpec,
    Verdict,
    early_train_error,
    final_train_error,
    final_val_error,
    judge,
    run_train_error,
)
from verydeep.experiments.claims import CLAIMS, claims_of
from verydeep.runs import MetricsRow, Summary

# -- the statistics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("df", "t"), [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042), (1e7, 1.960)])
def test_the_t_quantiles_are_the_tables(df, t):
    assert t_quantile(0.975, df) == pytest.approx(t, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-t, abs=5e-4)


@pytest.mark.parametrize(
    ("a", "b"),
    [([0.31, 0.29, 0.35], [0.22, 0.27, 0.21]), ([0.499, 0.834, 0.493], [0.24, 0.25, 0.258]),
     ([1.0, 2.0], [3.0, 5.0, 4.0, 9.0]), ([0.06, 0.061, 0.059, 0.062, 0.058], [0.07, 0.05])],
)  # fmt: skip
def test_welchs_interval_and_p_are_scipys(a, b):
    d = welch(a, b)
    test = stats.ttest_ind(a, b, equal_var=False)
    low, high = test.confidence_interval(0.95)
    assert (d.low, d.high, d.df) == pytest.approx((low, high, test.df), rel=1e-10, abs=1e-12)
    assert d.p_value == pytest.approx(test.pvalue, rel=1e-10)


def test_quantiles_below_one_and_outside_the_unit_interval():
    assert t_quantile(0.6, 10) == pytest.approx(0.2602, abs=1e-4)  # the table's t(0.60, 10)
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-12)
    for p in (0.0, 1.0, -0.1, 1.2):
        with pytest.raises(ValueError, match=rf"p must lie in \(0, 1\), not {p}$"):
            t_quantile(p, 4)


def test_welchs_interval_matches_a_case_worked_by_hand():
    # means 2 and 5, both standard deviations 1, n = 3: se = sqrt(1/3 + 1/3) = 0.8165;
    # df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4; t(0.975, 4) = 2.7764; half-width 2.2669; t = -3/0.8165 = -3.674
    d = welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (d.mean_a, d.std_a, d.mean_b, d.std_b, d.n_a, d.n_b) == (2.0, 1.0, 5.0, 1.0, 3, 3)
    assert d.df == pytest.approx(4.0) and d.value == -3.0
    assert (d.low, d.high) == (pytest.approx(-5.2669, abs=1e-4), pytest.approx(-0.7331, abs=1e-4))
    assert d.p_value == pytest.approx(0.02131, abs=1e-5)  # two-sided p of t = -3.674 on 4 df


def test_welch_with_unequal_spreads_uses_the_satterthwaite_degrees_of_freedom():
    # variances 1/3 and 100/3 of the means: df = (101/3)^2 / ((1/3)^2/2 + (100/3)^2/2) = 2.0398
    d = welch([0.0, 1.0, 2.0], [0.0, 10.0, 20.0])
    assert d.df == pytest.approx(10201 / 5000.5, rel=1e-9)
    assert d.high - d.value == pytest.approx(t_quantile(0.975, d.df) * math.sqrt(101 / 3), rel=1e-9)
    # standard deviations 2 and 10: se = sqrt(4/3 + 100/3); the p value of t = -8 / se on its df
    d = welch([0.0, 2.0, 4.0], [0.0, 10.0, 20.0])
    se = math.sqrt(4 / 3 + 100 / 3)
    assert d.df == pytest.approx((104 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (100 / 3) ** 2 / 2))
    assert d.p_value == pytest.approx(2 * stats.t.sf(8 / se, d.df), rel=1e-12) and 0.2 < d.p_value < 0.5


def test_one_seed_a_side_gives_no_interval_and_decides_nothing():
    outcome, d = decide([0.1], [0.5], "lower")
    assert outcome == "inconclusive" and d.low is None and d.p_value is None and d.value == pytest.approx(-0.4)
    assert (d.std_a, d.std_b, d.n_a, d.n_b) == (0.0, 0.0, 1, 1)
    outcome, d = decide([0.1], [0.5, 0.7], "lower")  # one side of one seed is enough to decide nothing
    assert outcome == "inconclusive" and d.low is None and d.std_b == pytest.approx(0.1414, abs=1e-4)
    outcome, d = decide([0.5, 0.7], [0.1], "higher")
    assert outcome == "inconclusive" and d.low is None and d.std_a == pytest.approx(0.1414, abs=1e-4)
    assert welch([0.1], [0.5, 0.7], level=0.9).level == 0.9  # the level asked for is kept with no interval


def test_two_seeds_a_side_use_both_spreads():
    # std of (1, 2) and (3, 5): 0.7071 and 1.4142; se = sqrt(0.25 + 1) = 1.118; df = 1.25^2 / (0.25^2 + 1^2)
    d = welch([1.0, 2.0], [3.0, 5.0])
    assert (d.std_a, d.std_b) == (pytest.approx(0.5**0.5), pytest.approx(2**0.5))
    assert d.df == pytest.approx(1.5625 / 1.0625)
    assert d.high - d.value == pytest.approx(t_quantile(0.975, 1.5625 / 1.0625) * 1.25**0.5)


def test_seeds_that_agree_exactly_give_an_exact_difference():
    outcome, d = decide([0.1, 0.1, 0.1], [0.2, 0.2, 0.2], "lower")
    assert outcome == "reproduced" and d.low == d.high == pytest.approx(-0.1) and d.p_value == 0.0
    assert decide([0.1, 0.1], [0.1, 0.1], "lower")[0] == "inconclusive"
    assert welch([0.1, 0.1], [0.2, 0.2], level=0.9).level == 0.9


@pytest.mark.parametrize(
    ("a", "b", "lower", "higher"),
    [
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], "reproduced", "contradicted"),  # interval [-5.27, -0.73]
        ([4.0, 5.0, 6.0], [1.0, 2.0, 3.0], "contradicted", "reproduced"),
        ([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], "inconclusive", "inconclusive"),  # [-3.27, 1.27] holds zero
    ],
)
def test_a_direction_is_reproduced_contradicted_or_inconclusive_by_where_the_interval_lies(a, b, lower, higher):
    assert decide(a, b, "lower")[0] == lower and decide(a, b, "higher")[0] == higher


def test_equivalence_is_decided_by_two_one_sided_tests_against_the_margin():
    close = ([0.100, 0.102, 0.104], [0.101, 0.103, 0.105])  # difference -0.001, 90% interval about +-0.0038
    outcome, d = decide(*close, "equivalent", margin=0.01)
    assert outcome == "reproduced" and d.level == pytest.approx(0.90)
    assert d.high - d.value == pytest.approx(t_quantile(0.95, d.df) * math.sqrt(2 * 0.002**2 / 3))
    assert decide(*close, "equivalent", margin=0.003)[0] == "inconclusive"  # the interval crosses the margin
    # a margin of 0.005 holds the 90% interval [-0.0048, +0.0028] but not the 95% one [-0.0055, +0.0035]:
    # TOST at 5% reads the 90% one
    assert decide(*close, "equivalent", margin=0.005)[0] == "reproduced"
    far = ([0.10, 0.101, 0.102], [0.13, 0.131, 0.132])  # 3 points apart, the 95% interval well outside +-1
    outcome, d = decide(*far, "equivalent", margin=0.01)
    assert outcome == "contradicted" and d.level == pytest.approx(0.95) and d.high < -0.01
    with pytest.raises(ValueError, match="^an equivalence claim needs a positive margin$"):
        decide(*close, "equivalent")
    with pytest.raises(ValueError, match="positive margin"):
        decide(*close, "equivalent", margin=0.0)
    assert decide([0.1], [0.1], "equivalent", margin=0.01)[0] == "inconclusive"  # one seed a side


def test_a_difference_exactly_at_the_margin_is_not_inside_the_band_nor_outside_it():
    # seeds that agree exactly give the interval [d, d]; 0.5 - 0.75 = -0.25 exactly in binary
    assert decide([0.5, 0.5], [0.75, 0.75], "equivalent", margin=0.25)[0] == "inconclusive"
    assert decide([0.75, 0.75], [0.5, 0.5], "equivalent", margin=0.25)[0] == "inconclusive"
    assert decide([0.5, 0.5], [0.75, 0.75], "equivalent", margin=0.5)[0] == "reproduced"
    assert decide([0.5, 0.5], [0.75, 0.75], "equivalent", margin=0.125)[0] == "contradicted"


def test_an_interval_below_zero_but_inside_the_margin_on_its_upper_side_is_inconclusive():
    # difference -0.012 (std 0.004 a side): 95% interval [-0.0211, -0.0029], 90% [-0.0190, -0.0050]: neither
    # inside +-0.01 nor wholly outside it
    outcome, d = decide([0.096, 0.100, 0.104], [0.108, 0.112, 0.116], "equivalent", margin=0.01)
    assert outcome == "inconclusive" and d.low < -0.01 < d.high < 0


def test_the_seeds_that_would_decide_an_inconclusive_claim_at_its_budget():
    # difference -1, both spreads 1: n = 9 is the first with t(0.975, 2n - 2) * sqrt(2 / n) < 1
    # (n = 8: 2.1448 * 0.5 = 1.072; n = 9: 2.1199 * 0.4714 = 0.9993)
    d = welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert evidence.seeds_to_decide(d, "lower") == 9 == evidence.seeds_to_decide(d, "higher")
    assert evidence.seeds_to_decide(welch([1.0, 2.0], [1.0, 2.0]), "lower") is None  # no difference at all
    assert evidence.seeds_to_decide(welch([1.0, 1.0], [2.0, 2.0]), "lower") is None  # no spread: decided already
    far = welch([0.10, 0.11, 0.12], [0.13, 0.14, 0.15], 0.9)
    assert evidence.seeds_to_decide(far, "equivalent", margin=0.02) is None  # 3 points apart: never within 2
    assert evidence.seeds_to_decide(d, "lower", most=5) == 6  # more than 5
    assert evidence.seeds_to_decide(d, "lower", most=9) == 9  # the last one looked at still counts
    # spreads 1 again; a difference of 5 is decided by 2 seeds (t(0.975, 2) = 4.303 < 5), one of 3 by 3 (4.303 > 3;
    # t(0.975, 4) * sqrt(2 / 3) = 2.776 * 0.8165 = 2.267 < 3): the degrees of freedom are 2n - 2, not more
    assert evidence.seeds_to_decide(welch([6.0, 7.0, 8.0], [1.0, 2.0, 3.0]), "higher") == 2
    assert evidence.seeds_to_decide(welch([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]), "higher") == 3
    # an equivalence within +-2 at 0.5 apart: TOST's 90% interval, t(0.95, 2n - 2) * sqrt(2 / n) < 1.5 first at
    # n = 4 (n = 3: 2.132 * 0.8165 = 1.741; n = 4: 1.943 * 0.7071 = 1.374); a 95% interval would need n = 5
    near = welch([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert evidence.seeds_to_decide(near, "equivalent", margin=2.0) == 4
    assert evidence.seeds_to_decide(near, "equivalent") is None  # no margin: nothing to be within
    # a difference far inside its noise: more than the default cap of 1,000 seeds
    assert evidence.seeds_to_decide(welch([1.0, 2.0, 3.0], [1.01, 2.01, 3.01]), "lower") == 1001


def index_entry(**changes) -> dict:
    entry = {"key": "resnet-fig6-resnet-deeper-better", "claim": "the deeper ResNet is better", "a": "ResNet-56",
             "b": "ResNet-20", "relation": "lower", "outcome": "inconclusive", "unit": "error", "preset": "standard",
             "difference": -0.02, "interval": [-0.05, 0.01], "images_per_run": 4000,
             "evidence": "...; about 9 seeds a side would decide it (reproduced) at this budget."}  # fmt: skip
    return entry | changes


def verdict_of(key: str = "resnet-fig6-resnet-deeper-better", outcome: str = "inconclusive") -> Verdict:
    """A verdict of the claim ``key`` whose difference is -2.00 points, its interval across zero."""
    claim = next(c for c in CLAIMS if c.key == key)
    d = welch([0.10, 0.12, 0.14], [0.13, 0.14, 0.15])
    return Verdict(claim, "ResNet-56", "ResNet-20", outcome, d, quantity=Quantity("train error %", lambda r, rs: 0.0))


def test_the_index_gives_an_inconclusive_claims_differences_and_what_the_calibration_measured_of_it():
    from verydeep.experiments.report import Measured, budget

    key = "resnet-fig6-resnet-deeper-better"
    here, quick = Measured("standard", key, 4000), [Measured("quick", key, 1000, -0.01)]
    text = budget(verdict_of(), here, quick, EXPERIMENTS["warmup"])
    assert text.startswith(f"**{verdict_of().claim.statement}** (ResNet-56 vs ResNet-20): -1.00 at quick (1,000 "
                           "images) -> -2.00 at standard (4,000 images)")  # fmt: skip
    assert "would decide it" not in text  # nothing extrapolated from two presets
    # the committed record of the ResNet reversal: the rule picked long's regime
    assert "(docs/calibration.md: 5 regimes; seed-readings on the paper's side: 4 of 30 at 50,000" in text
    assert "picked `long` in 2k-step" in text
    other_key = "vgg-table3-c-beats-b"
    other = budget(verdict_of(other_key), Measured("standard", other_key, 4000), quick, EXPERIMENTS["warmup"])
    assert "not calibrated" in other and "-1.00 at quick" not in other  # the earlier difference is another claim's
    assert budget(verdict_of(outcome="reproduced"), here, quick, EXPERIMENTS["warmup"]) == ""
    assert "full" in budget(verdict_of(), here, quick, EXPERIMENTS["degradation"])
    assert "full" not in budget(verdict_of(), here, quick, dataclasses.replace(EXPERIMENTS["degradation"], presets={}))


def test_a_claim_whose_study_found_no_regime_says_so_and_names_the_command_that_would_decide_it(tmp_path):
    record = calibration.Record(tmp_path / "resnet-reversal.json")
    study = calibration.STUDIES["resnet-reversal"]
    for seed, (a, b) in zip(calibration.SEEDS, ((0.12, 0.10), (0.13, 0.11))):  # ResNet-56 above: the wrong side
        for spec, value in ((study.a, a), (study.b, b)):
            record.add({"key": f"{spec.model}-{seed}", "label": spec.label, "regime": "2k-step", "budget": 150_000,
                        "seed": seed, "readings": dict.fromkeys(study.readings, value), "seconds": 60})  # fmt: skip
    record.save(study)
    text = calibration.finding(study.claim, tmp_path)
    assert "found no regime that decides it within 10 hours" in text and "--data cifar10" in text
    assert "has not run here" in calibration.finding(study.claim, tmp_path / "elsewhere")


def test_an_unknown_relation_is_refused():
    with pytest.raises(ValueError, match="unknown relation 'worse'"):
        decide([1.0, 2.0], [3.0, 4.0], "worse")
    assert evidence.LEVEL == 0.95


# -- what each quantity measures ------------------------------------------------------------------------------


def summary(train_error: float = 0.1, val_error: float | None = 0.1, steps: int = 200) -> Summary:
    return Summary("m", {}, "fashion-mnist", "resnet_cifar", 2.0, steps, train_error, val_error, None,
                   None if val_error is None else 5000, 1.0, 1000.0, "fp32", "cpu")  # fmt: skip


def result(label: str, model: str = "resnet20", *, train_error: float = 0.1, val_error: float | None = 0.1,
           windows: tuple[tuple[int, float], ...] = (), val_series: tuple[tuple[int, float], ...] = (),
           steps: int = 200, path: str | None = None) -> RunResult:  # fmt: skip
    """A finished run as the runner loads it: training-error windows (step, error) and epoch rows (step, val)."""
    rows = [MetricsRow(s, s / 100, 0.1, train_loss=1.0, train_error=e) for s, e in windows]
    rows += [MetricsRow(s, s / 100, 0.1, val_error=e, images_per_second=1000.0) for s, e in val_series]
    rows.sort(key=lambda r: (r.step, r.is_epoch))
    return RunResult(RunSpec(label, model), Path(path or label), summary(train_error, val_error, steps), rows)


def test_the_final_errors_are_the_summarys_and_a_run_without_validation_says_so():
    run = result("x", train_error=0.12, val_error=0.15)
    assert final_train_error(run, {}) == 0.12 and final_val_error(run, {}) == 0.15
    with pytest.raises(ValueError, match="held out no validation images"):
        final_val_error(result("y", val_error=None), {})


def test_the_early_training_error_averages_the_windows_of_the_first_tenth():
    windows = ((5, 0.9), (10, 0.7), (20, 0.5), (21, 0.1), (200, 0.05))  # the first tenth of 200 steps ends at 20
    assert early_train_error(result("x", windows=windows), {}) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert early_train_error(result("x", windows=((50, 0.4), (100, 0.2))), {}) == 0.4  # none that early: the first


def test_the_training_error_over_the_run_averages_every_window():
    windows = ((5, 0.9), (10, 0.7), (20, 0.5), (200, 0.1))
    assert run_train_error(result("x", windows=windows, val_series=((200, 0.3),)), {}) == pytest.approx(0.55)


def test_every_experiment_has_the_presets_with_seeds_enough_to_decide():
    for experiment in EXPERIMENTS.values():
        names = [name for name in experiment.presets if name != "long"]
        assert names == ["smoke", "quick", "standard", "full"], experiment.name
        assert all(p.seeds >= 2 for p in experiment.presets.values()) and experiment.presets["full"].seeds == 5
    assert "long" in degradation.EXPERIMENT.presets  # the ResNet reversal, which standard cannot decide


ROOT = Path(__file__).resolve().parent.parent
READING_OF = {"last": "train_error", "tail": "tail_train_error", "val": "val_error"}


@pytest.mark.parametrize("study_name, experiment, preset", [
    ("resnet-reversal", degradation.EXPERIMENT, "long"), ("vgg-d-vs-a", vgg_depth.EXPERIMENT, "standard"),
    ("vgg-d-vs-a", vgg_depth.EXPERIMENT, "long")])  # fmt: skip
def test_a_preset_built_from_the_calibration_is_the_rules_pick_from_its_committed_record(study_name, experiment,
                                                                                         preset):  # fmt: skip
    study = calibration.STUDIES[study_name]
    chosen = calibration.pick(study, calibration.Record(ROOT / "docs" / "calibration" / f"{study_name}.json"), preset)
    assert chosen is not None
    p, claim = experiment.presets[preset], next(c for c in CLAIMS if c.key == study.claim)
    assert p.subset == chosen.regime.subset and p.subset * p.epochs == chosen.budget
    wanted = {**study.overrides, **chosen.regime.overrides}
    assert {k: p.overrides.get(k) for k in wanted} == wanted
    assert p.looks == calibration.LOOKS and p.seeds == calibration.LOOKS.seeds[0]
    assert p.readings.get(claim.key, claim.quantity) == READING_OF[chosen.reading]
    assert p.log_every == study.log_every or chosen.reading != "tail"  # the tail averages windows of that length


def test_no_cell_fits_standard_for_the_resnet_reversal_so_standard_keeps_its_regime():
    study = calibration.STUDIES["resnet-reversal"]
    record = calibration.Record(ROOT / "docs" / "calibration" / "resnet-reversal.json")
    assert calibration.pick(study, record, "standard") is None
    assert degradation.EXPERIMENT.presets["standard"].looks is None


def test_steps_to_reach_is_the_first_evaluated_step_at_or_below_the_target():
    run = result("x", "vgg_d", val_series=((10, 0.5), (20, 0.2), (30, 0.1), (40, 0.2)))
    assert vgg_init.steps_to_reach(run, 0.2) == 20
    assert vgg_init.steps_to_reach(run, 0.15) == 30
    assert vgg_init.steps_to_reach(run, 0.05) is None


def test_steps_to_a_use_the_a_of_the_same_seed_and_count_never_as_the_whole_run():
    runs = {"A": result("A", "vgg_a", val_error=0.2)}
    warm = result("D from A", "vgg_d", val_series=((10, 0.3), (20, 0.2)), steps=40)
    cold = result("D random", "vgg_d", val_series=((10, 0.4), (20, 0.3)), steps=40)
    assert vgg_init.steps_to_a(warm, runs) == 20 and vgg_init.steps_to_a(cold, runs) == 40


def test_the_response_of_a_run_is_the_mean_over_its_3x3_layers(monkeypatch):
    monkeypatch.setattr(layer_responses, "responses", lambda folder: {Path("a"): (1.5, 0.5, 1.0)}[folder])
    assert layer_responses.mean_response(result("x", path="a"), {}) == pytest.approx(1.0)


def test_the_protocol_quantities_evaluate_the_run_with_their_protocol(monkeypatch):
    errors = {"center": 0.2, "tencrop": 0.18}
    monkeypatch.setattr(protocols, "protocol_error", lambda folder, protocol: errors[protocol])
    run = result("ResNet-20")
    assert protocols.centre_error(run, {}) == 0.2 and protocols.tencrop_error(run, {}) == 0.18


def test_the_degradation_placeholders_are_the_shallowest_and_deepest_depth():
    assert degradation.names({"depths": (56, 20, 32)}) == {"shallow": "20", "deep": "56"}


# -- every claim in the paper's direction --------------------------------------------------------------------

# From the papers, claim by claim: the run that has the lower quantity, and the one with the higher; for the
# equivalence claims, the two that lie within the band. Written from PAPERS.md, so that a ledger entry with its
# sides or its relation turned round fails here.
LOWER_THAN = {
    "resnet-fig6-plain-degrades": ("plain-20", "plain-56"),  # Fig. 6: plain-56 has the higher training error
    "resnet-fig6-resnet-deeper-better": ("ResNet-56", "ResNet-20"),
    "resnet-fig6-resnet-beats-plain-train": ("ResNet-56", "plain-56"),
    "resnet-fig6-resnet-beats-plain-val": ("ResNet-56", "plain-56"),
    "resnet-fig4-resnet-converges-faster": ("ResNet-20", "plain-20"),
    "resnet-fig7-resnet-weaker-deep": ("ResNet-56", "plain-56"),
    "resnet-fig7-resnet-weaker-shallow": ("ResNet-20", "plain-20"),
    "resnet-fig7-deeper-resnet-weaker": ("ResNet-56", "ResNet-20"),
    "resnet-table3-b-beats-a": ("option B", "option A"),
    "resnet-table3-c-beats-b": ("option C", "option B"),
    "resnet-sec42-warmup-starts-resnet110": ("warm-up", "lr 0.1 from the start"),
    "vgg-table3-depth-helps": ("D", "A"),
    "vgg-table3-c-beats-b": ("C", "B"),
    "vgg-table3-d-beats-c": ("D", "C"),
    "vgg-sec41-b-beats-shallow-5x5": ("B random", "B-5x5"),
    "vgg-table3-scale-jittering": ("D jittered", "D fixed scale"),  # S in [256, 512]: 25.6 vs S=256: 27.0
    "vgg-sec31-d-from-a-faster": ("D from A", "D random"),
    "vgg-sec31-e-from-a-faster": ("E from A", "E random"),
}
WITHIN_A_POINT = {
    "resnet-table3-projections-not-essential": ("option A", "option C"),
    "vgg-table3-depth-saturates": ("E", "D"),
    "vgg-table3-lrn-does-not-help": ("A-LRN", "A"),
}
# the two protocols of one run: ten crops give the lower error (ResNet Sec. 3.4)
TWO_PROTOCOLS = {"resnet-sec34-ten-crop-beats-centre": ("tencrop_error", "centre_error")}
# a run's reading against a line fixed before the seeds ran: (the quantity that should be lower, the higher one)
AGAINST_A_LINE = {
    "resnet-sec41-plain-gradients-do-not-vanish": ("vanishing_line", "gradient_floor"),  # no layer under 1%
    "resnet-sec41-plain-gradients-healthy": ("gradient_spread", "healthy_band"),  # within two decades
}
# the weaker reading of a directional claim: a no higher than b by the margin or more (non-inferiority)
NO_HIGHER_WITHIN_A_POINT = {"resnet-sec41-degradation-addressed": ("ResNet-56", "ResNet-20")}
NOT_TESTED = {"vgg-table5-dense-and-multicrop", "vgg-sec31-bad-init-stalls-deep-nets"}
NAMES = {"degradation": {"shallow": "20", "deep": "56"}, "layer_responses": {"shallow": "20", "deep": "56"},
         "protocols": {"shallow": "20", "deep": "56"}, "gradients": {"shallow": "20", "deep": "56"}}  # fmt: skip


def test_the_ledger_lists_every_claim_of_both_papers_with_its_source():
    ledger = set(LOWER_THAN) | set(WITHIN_A_POINT) | set(TWO_PROTOCOLS) | set(AGAINST_A_LINE) | NOT_TESTED
    ledger |= set(NO_HIGHER_WITHIN_A_POINT)
    assert {c.key for c in CLAIMS} == ledger
    assert len({c.key for c in CLAIMS}) == len(CLAIMS)
    for claim in CLAIMS:
        assert claim.source.startswith(("ResNet ", "VGG ")) and claim.statement and claim.paper, claim.key
        assert claim.experiment in EXPERIMENTS and claim in EXPERIMENTS[claim.experiment].claims
        experiment = EXPERIMENTS[claim.experiment]
        if not claim.not_tested:
            assert {claim.quantity, claim.quantity_b or claim.quantity} <= set(experiment.quantities), claim.key
        assert bool(claim.not_tested) == (claim.key in NOT_TESTED)
    assert {c.key: c.margin for c in CLAIMS if c.relation == "equivalent"} == dict.fromkeys(WITHIN_A_POINT, 0.01)
    assert claims_of("warmup") == tuple(c for c in CLAIMS if c.experiment == "warmup")


class Fixed:
    """Quantities that return the values a test sets for each (label, seed), whatever the runs hold."""

    def __init__(self, values: dict[tuple[str, str], list[float]]):
        self.values = values

    def quantity(self, name: str, real: Quantity) -> Quantity:
        return Quantity(real.title, lambda run, runs: self.values[(name, run.spec.label)][runs["_seed"]], real.unit)


def verdict_on(claim, values: dict[tuple[str, str], list[float]]):
    experiment = EXPERIMENTS[claim.experiment]
    fixed = Fixed(values)
    labels = {label for _, label in values}
    n = len(next(iter(values.values()))) if values else 3
    seeds = {s: {label: result(label) for label in labels} | {"_seed": s} for s in range(n)}
    quantities = {name: fixed.quantity(name, q) for name, q in experiment.quantities.items()}
    fake = dataclasses.replace(experiment, quantities=quantities)
    return judge(claim, fake, NAMES.get(claim.experiment, {}), seeds)


def spread(centre: float) -> list[float]:
    return [centre - 0.002, centre, centre + 0.002]


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.key in LOWER_THAN], ids=lambda c: c.key)
def test_each_directional_claim_reads_reproduced_in_the_papers_direction_and_contradicted_reversed(claim):
    lower, higher = LOWER_THAN[claim.key]
    q = claim.quantity
    assert verdict_on(claim, {(q, lower): spread(0.10), (q, higher): spread(0.15)}).outcome == "reproduced"
    assert verdict_on(claim, {(q, lower): spread(0.15), (q, higher): spread(0.10)}).outcome == "contradicted"
    tie = verdict_on(claim, {(q, lower): [0.10, 0.14, 0.12], (q, higher): [0.13, 0.11, 0.12]})
    assert tie.outcome == "inconclusive" and tie.difference.low < 0 < tie.difference.high


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.key in WITHIN_A_POINT], ids=lambda c: c.key)
def test_each_equivalence_claim_reads_reproduced_within_a_point_and_contradicted_far_outside(claim):
    one, other = WITHIN_A_POINT[claim.key]
    q = claim.quantity
    assert verdict_on(claim, {(q, one): spread(0.100), (q, other): spread(0.103)}).outcome == "reproduced"
    for gap in (0.03, -0.03):
        assert verdict_on(claim, {(q, one): spread(0.1), (q, other): spread(0.1 + gap)}).outcome == "contradicted"
    wide = verdict_on(claim, {(q, one): [0.08, 0.10, 0.12], (q, other): [0.09, 0.11, 0.13]})
    assert wide.outcome == "inconclusive"


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.key in NO_HIGHER_WITHIN_A_POINT], ids=lambda c: c.key)
def test_the_weaker_reading_is_reproduced_below_the_margin_and_contradicted_beyond_it(claim):
    deeper, shallower = NO_HIGHER_WITHIN_A_POINT[claim.key]
    q = claim.quantity
    assert claim.relation == "not higher" and claim.margin == 0.01
    # lower, equal, or higher by half a point: all no higher than a point above
    for gap in (-0.02, 0.0, 0.005):
        verdict = verdict_on(claim, {(q, deeper): spread(0.10 + gap), (q, shallower): spread(0.10)})
        assert verdict.outcome == "reproduced", gap
    assert verdict_on(claim, {(q, deeper): spread(0.13), (q, shallower): spread(0.10)}).outcome == "contradicted"
    wide = verdict_on(claim, {(q, deeper): [0.08, 0.11, 0.14], (q, shallower): [0.09, 0.10, 0.11]})
    assert wide.outcome == "inconclusive" and wide.evidence().startswith("train error %: ResNet-56 11.00 ± 3.00 vs ")
    assert "90% interval [" in wide.evidence()
    assert "(one-sided Welch's t against the margin; margin +1.00 points)" in wide.evidence()


def test_non_inferiority_reads_the_90_percent_interval_for_its_verdict_and_the_95_against_it():
    # a - b = +1.5; the verdict's edges are the 90% interval's upper end and the 95% interval's lower end
    a, b = [1.0, 1.5, 2.0, 1.5, 2.0], [0.0, 0.0, 0.0, 0.5, 0.0]
    inner, outer = welch(a, b, 1 - 2 * (1 - 0.95)), welch(a, b)
    assert decide(a, b, "not higher", inner.high + 1e-9) == ("reproduced", inner)
    assert decide(a, b, "not higher", inner.high - 1e-9)[0] == "inconclusive"
    assert decide(a, b, "not higher", outer.low - 1e-9) == ("contradicted", outer)
    assert decide(a, b, "not higher", outer.low + 1e-9)[0] == "inconclusive"
    # an interval that ends on the margin is not below it, nor above it
    assert decide(a, b, "not higher", inner.high)[0] == decide(a, b, "not higher", outer.low)[0] == "inconclusive"
    assert decide([0.1], [0.1], "not higher", 0.01)[0] == "inconclusive"  # one seed a side decides nothing
    for margin in (None, 0.0, -0.01):
        with pytest.raises(ValueError, match="^a non-inferiority claim needs a positive margin$"):
            decide(a, b, "not higher", margin)


def test_the_seeds_a_non_inferiority_needs_count_to_its_margin_from_either_side():
    b = [0.09, 0.10, 0.11]
    inside = welch(b, b)  # difference 0, a point's margin away
    outside = welch([x + 0.02 for x in b], b)  # difference +2 points, one past the margin
    n_in, n_out = (evidence.seeds_to_decide(d, "not higher", 0.01) for d in (inside, outside))
    # spread sqrt(2) points; one-sided at 5%: t(0.95, 12) 1.782 x 1.414 / sqrt(7) = 0.95 < 1 point, at 6 seeds
    # t(0.95, 10) 1.812 x 1.414 / sqrt(6) = 1.05; two-sided: t(0.975, 16) 2.120 x 1.414 / 3 = 0.9993 at 9 seeds
    assert n_in == evidence.seeds_to_decide(inside, "equivalent", 0.01) == 7  # one-sided, as TOST's sides
    assert n_out == evidence.seeds_to_decide(welch([x + 0.01 for x in b], b), "lower") == 9  # two-sided, 95%
    assert evidence.seeds_to_decide(welch([0.11, 0.11], [0.10, 0.10]), "not higher", 0.01) is None  # no spread


def test_ten_crops_are_compared_with_the_centre_view_of_the_same_runs():
    (claim,) = [c for c in CLAIMS if c.key in TWO_PROTOCOLS]
    better, worse = TWO_PROTOCOLS[claim.key]
    run = "ResNet-20"
    verdict = verdict_on(claim, {(better, run): spread(0.10), (worse, run): spread(0.12)})
    assert verdict.outcome == "reproduced" and (verdict.a, verdict.b) == (run, run)
    assert verdict_on(claim, {(better, run): spread(0.12), (worse, run): spread(0.10)}).outcome == "contradicted"


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.key in AGAINST_A_LINE], ids=lambda c: c.key)
def test_a_gradient_claim_compares_the_deeper_plain_nets_reading_with_its_line(claim):
    lower, higher = AGAINST_A_LINE[claim.key]
    run = "plain-56"
    verdict = verdict_on(claim, {(lower, run): spread(0.10), (higher, run): spread(0.15)})
    assert verdict.outcome == "reproduced" and (verdict.a, verdict.b) == (run, run)
    assert verdict_on(claim, {(lower, run): spread(0.15), (higher, run): spread(0.10)}).outcome == "contradicted"
    # the line is a constant: the readings of the seeds alone make the interval
    line = "vanishing_line" if "vanish" in claim.key else "healthy_band"
    constant = EXPERIMENTS["gradients"].quantities[line].measure(None, {})
    assert constant == {"vanishing_line": -2.0, "healthy_band": 2.0}[line]


def test_a_claim_not_tested_says_why_and_is_never_judged():
    for claim in (c for c in CLAIMS if c.key in NOT_TESTED):
        verdict = verdict_on(claim, {})
        assert verdict.outcome == "not tested" and verdict.difference is None
        assert verdict.evidence() == f"Not tested: {claim.not_tested}."


def test_a_claim_whose_runs_were_not_trained_is_left_out():
    (claim,) = [c for c in CLAIMS if c.key == "vgg-table3-d-beats-c"]
    assert verdict_on(claim, {("val_error", "D"): spread(0.1)}) is None  # --configs without C


def test_the_evidence_gives_both_sides_the_difference_and_its_interval():
    (claim,) = [c for c in CLAIMS if c.key == "resnet-fig6-plain-degrades"]
    verdict = verdict_on(claim, {("train_error", "plain-56"): [0.38, 0.39, 0.40],
                                 ("train_error", "plain-20"): [0.20, 0.21, 0.22]})  # fmt: skip
    # difference 0.18, both standard deviations 0.01: half-width 2.7764 * 0.01 * sqrt(2/3) = 0.0227
    assert verdict.evidence() == (
        "train error %: plain-56 39.00 ± 1.00 vs plain-20 21.00 ± 1.00 (mean ± std over 3 and 3 seeds); difference "
        "+18.00 points, 95% interval [+15.73, +20.27] (Welch's t)."
    )
    (band,) = [c for c in CLAIMS if c.key == "vgg-table3-lrn-does-not-help"]
    verdict = verdict_on(band, {("val_error", "A-LRN"): spread(0.1), ("val_error", "A"): spread(0.1)})
    # standard deviations 0.002: half-width t(0.95, 4) * 0.002 * sqrt(2/3) = 2.1318 * 0.001633 = 0.0035
    assert verdict.evidence().endswith("90% interval [-0.35, +0.35] (TOST with Welch's t; margin ±1.00 points).")


# -- which runs each experiment trains -----------------------------------------------------------------------


def test_vgg_depth_starts_the_deeper_configurations_from_the_a_of_their_seed():
    preset = vgg_depth.EXPERIMENT.presets["quick"]
    specs = vgg_depth.runs({"configs": tuple(vgg_depth.CONFIGS)}, preset)
    assert [(s.label, s.model, s.init_from) for s in specs] == [
        ("A", "vgg_a", None), ("A-LRN", "vgg_a_lrn", None), ("B", "vgg_b", "A"), ("B-5x5", "vgg_b_5x5", None),
        ("C", "vgg_c", "A"), ("D", "vgg_d", "A"), ("E", "vgg_e", "A"), ("B random", "vgg_b", None),
    ]  # fmt: skip
    assert [s.label for s in vgg_depth.runs({"configs": ("D",)}, preset)] == ["A", "D"]  # D needs its A
    with pytest.raises(ValueError, match="unknown VGG configuration F"):
        vgg_depth.runs({"configs": ("F",)}, preset)


def test_vgg_init_trains_a_then_each_configuration_from_random_and_from_a():
    preset = vgg_init.EXPERIMENT.presets["quick"]
    specs = vgg_init.runs({"configs": ("D", "E")}, preset)
    assert [(s.label, s.model, s.group, s.init_from) for s in specs] == [
        ("A", "vgg_a", "A", None),
        ("D random", "vgg_d", "D", None), ("D from A", "vgg_d", "D", "A"),
        ("E random", "vgg_e", "E", None), ("E from A", "vgg_e", "E", "A"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--configs A-LRN: A's weights start the deeper configurations B, C, D, E"):
        vgg_init.runs({"configs": ("A-LRN",)}, preset)


def test_the_warmup_compares_the_papers_warm_up_with_lr_0_1_from_the_start_on_resnet110():
    preset = warmup.EXPERIMENT.presets["quick"]
    warm, cold = warmup.runs({"depths": (110,)}, preset)
    assert (warm.model, warm.overrides, cold.model, cold.overrides) == ("resnet110", {}, "resnet110",
                                                                        {"warmup_lr": 0.0})  # fmt: skip
    with pytest.raises(ValueError, match="warms up only the deepest CIFAR ResNets: --depths 110, 1202"):
        warmup.runs({"depths": (56,)}, preset)


def test_the_layer_responses_and_protocols_measure_the_degradation_runs():
    preset = degradation.EXPERIMENT.presets["quick"]
    args = {"depths": (20, 56)}
    assert layer_responses.runs(args, preset) == degradation.runs(args, preset)
    assert protocols.runs(args, preset) == [s for s in degradation.runs(args, preset) if s.label == "ResNet-20"]
    assert layer_responses.EXPERIMENT.presets is protocols.EXPERIMENT.presets is degradation.SHARED_PRESETS
    assert all(degradation.SHARED_PRESETS[name] is p for name, p in degradation.EXPERIMENT.presets.items()
               if name != "long")  # fmt: skip
    assert all(not s.options.get("zero_init_residual") for s in degradation.runs(args, preset))  # Fig. 7's init


def test_each_unit_is_written_as_the_report_gives_it():
    error, steps, value = (Quantity("q", lambda r, rs: 0.0, unit) for unit in ("error", "steps", "value"))
    assert (error.format(0.12345), error.format_difference(-0.012)) == ("12.35", "-1.20")
    assert (steps.format(1234.4), steps.format_difference(20.0)) == ("1234", "+20")
    assert (value.format(0.123456), value.format_difference(-0.5)) == ("0.1235", "-0.5000")


def by_key(key: str):
    (claim,) = [c for c in CLAIMS if c.key == key]
    return claim


def test_an_inconclusive_verdict_says_how_many_seeds_would_decide_it():
    claim = by_key("resnet-fig6-plain-degrades")
    verdict = verdict_on(claim, {("train_error", "plain-56"): [0.02, 0.03, 0.04],
                                 ("train_error", "plain-20"): [0.01, 0.02, 0.03]})  # fmt: skip
    assert verdict.outcome == "inconclusive" and verdict.values_a == (0.02, 0.03, 0.04)
    assert verdict.values_b == (0.01, 0.02, 0.03) and verdict.quantity.title == "train error %"
    # the difference of 1 point with spreads of 1 point: 9 seeds a side (see the test of seeds_to_decide)
    assert verdict.evidence().endswith(
        "95% interval [-1.27, +3.27] (Welch's t); about 9 seeds a side would decide it (reproduced) at this "
        "budget, if the spread stays as measured.")  # fmt: skip
    reverse = verdict_on(claim, {("train_error", "plain-56"): [0.01, 0.02, 0.03],
                                 ("train_error", "plain-20"): [0.02, 0.03, 0.04]})  # fmt: skip
    assert "about 9 seeds a side would decide it (contradicted)" in reverse.evidence()
    tie = verdict_on(claim, {("train_error", "plain-56"): [0.02, 0.03], ("train_error", "plain-20"): [0.02, 0.03]})
    assert tie.evidence().endswith("(Welch's t); more seeds would not decide it at this budget.")


def test_a_verdict_on_one_seed_says_it_has_no_interval():
    claim = by_key("vgg-sec31-d-from-a-faster")
    experiment = EXPERIMENTS[claim.experiment]
    fixed = {"D from A": 20.0, "D random": 40.0}
    quantities = {"steps_to_a": Quantity("steps to reach A's val error", lambda r, rs: fixed[r.spec.label], "steps")}
    fake = dataclasses.replace(experiment, quantities={**experiment.quantities, **quantities})
    verdict = judge(claim, fake, {}, {0: {label: result(label) for label in fixed}})
    assert verdict.outcome == "inconclusive" and (verdict.a, verdict.b) == ("D from A", "D random")
    assert verdict.evidence() == (
        "steps to reach A's val error: D from A 20 ± 0 vs D random 40 ± 0 (mean ± std over 1 and 1 seeds); "
        "difference -20, no interval: one seed a side cannot decide.")  # fmt: skip


def test_a_claim_not_tested_keeps_its_claim_and_labels():
    claim = by_key("vgg-table5-dense-and-multicrop")
    verdict = verdict_on(claim, {})
    assert verdict.claim is claim and (verdict.a, verdict.b) == ("D", "D")


def test_an_inconclusive_verdict_says_how_many_seeds_would_decide_it_and_which_way():
    def claim(key):
        return next(c for c in CLAIMS if c.key == key)

    def suffix(verdict) -> str:
        return verdict.evidence().rsplit("; ", 1)[1]

    def expect(verdict, way: str, margin=None) -> None:
        assert verdict.outcome == "inconclusive"
        n = evidence.seeds_to_decide(verdict.difference, verdict.claim.relation, margin)
        assert suffix(verdict) == f"about {n} seeds a side would decide it ({way}) at this budget, if the spread " \
            "stays as measured."  # fmt: skip

    near, far = [0.10, 0.14, 0.12], [0.12, 0.16, 0.14]  # a difference of 2 points inside a wide spread
    lower = claim("resnet-fig6-resnet-deeper-better")  # ResNet-56 lower than ResNet-20
    expect(verdict_on(lower, {("train_error", "ResNet-56"): near, ("train_error", "ResNet-20"): far}), "reproduced")
    expect(verdict_on(lower, {("train_error", "ResNet-56"): far, ("train_error", "ResNet-20"): near}), "contradicted")
    higher = claim("resnet-fig6-plain-degrades")  # plain-56 higher than plain-20
    expect(verdict_on(higher, {("train_error", "plain-56"): far, ("train_error", "plain-20"): near}), "reproduced")
    expect(verdict_on(higher, {("train_error", "plain-56"): near, ("train_error", "plain-20"): far}), "contradicted")
    same = claim("vgg-table3-depth-saturates")  # E within a point of D
    wide = [0.10, 0.13, 0.16]
    expect(verdict_on(same, {("val_error", "E"): wide, ("val_error", "D"): [0.10, 0.131, 0.16]}), "reproduced", 0.01)
    weaker = claim("resnet-sec41-degradation-addressed")  # ResNet-56 less than a point above ResNet-20
    expect(verdict_on(weaker, {("train_error", "ResNet-56"): wide, ("train_error", "ResNet-20"): wide}),
           "reproduced", 0.01)  # fmt: skip
    above = [x + 0.03 for x in wide]  # three points above: past the margin
    expect(verdict_on(weaker, {("train_error", "ResNet-56"): above, ("train_error", "ResNet-20"): wide}),
           "contradicted", 0.01)  # fmt: skip
    # a difference far inside its noise: more seeds than the cap
    tiny = verdict_on(
        lower, {("train_error", "ResNet-56"): [0.1, 0.2, 0.3], ("train_error", "ResNet-20"): [0.1001, 0.2001, 0.3001]}
    )
    assert suffix(tiny) == "more than 1000 seeds a side would decide it (reproduced) at this budget, if the " \
        "spread stays as measured."  # fmt: skip


def test_hsus_degrees_of_freedom_are_the_smaller_side_less_one_whatever_the_spreads():
    a, b = [0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 10.1, 10.2]
    d = welch(a, b, hsu=True)
    assert d.df == 2.0 and welch(a, b).df > 2.0  # Satterthwaite's lie between the smaller side's and the sum's
    se = math.sqrt(statistics.variance(a) / 5 + statistics.variance(b) / 3)
    assert d.high - d.value == pytest.approx(stats.t.ppf(0.975, 2) * se, rel=1e-12)


def test_looks_split_the_level_over_the_looks_and_read_on_hsus_df():
    looks = evidence.Looks((5, 8))
    assert looks.level == pytest.approx(0.975)
    a, b = [0.10, 0.11, 0.12, 0.10, 0.13], [0.14, 0.13, 0.15, 0.16, 0.14]
    outcome, d = decide(a, b, "lower", looks=looks)
    assert outcome == "reproduced" and d.level == pytest.approx(0.975) and d.df == 4.0
    se = math.sqrt(statistics.variance(a) / 5 + statistics.variance(b) / 5)
    assert d.value + stats.t.ppf(0.9875, 4) * se == pytest.approx(d.high, rel=1e-12)
    # a difference that Welch's t at 95% decides and one look of two on Hsu's df does not
    a, b = [0.10, 0.12, 0.14], [0.15, 0.17, 0.19]
    assert decide(a, b, "lower")[0] == "reproduced"
    assert decide(a, b, "lower", looks=evidence.Looks((3, 5)))[0] == "inconclusive"
    inner = decide([0.100, 0.101, 0.102], [0.1, 0.101, 0.103], "equivalent", 0.01, evidence.Looks((3, 5)))[1]
    assert inner.level == pytest.approx(0.95)  # TOST reads 1 - 2 alpha: alpha = 0.025 at each of two looks


@pytest.mark.parametrize("seeds", [(), (1, 3), (5, 5), (8, 5)])
def test_looks_need_rising_counts_of_two_seeds_or_more(seeds):
    with pytest.raises(ValueError, match="rising seed counts"):
        evidence.Looks(seeds)


def test_a_presets_first_look_is_its_seeds():
    Preset("x", seeds=5, looks=evidence.Looks((5, 8)))
    with pytest.raises(ValueError, match="first look"):
        Preset("x", seeds=3, looks=evidence.Looks((5, 8)))


def test_the_readme_table_gives_each_preset_its_own_column_smallest_first():
    import runpy

    tool = runpy.run_path(str(ROOT / "tools" / "readme_results.py"))

    def index(preset: str, **entry) -> dict:
        machine = {"cpu": "AMD EPYC", "cores": 2, "native_bf16": True, "precision": "bf16", "torch": "2.14.1"}
        untested = index_entry(key="k2", claim="a claim not tested", outcome="not tested", why="no data", source="x")
        claims = [index_entry(preset=preset, source="Fig. 6", **entry), untested]
        return {"preset": preset, "machine": machine, "experiments": {"degradation": {"seconds": 60, "command": "c",
                "report": "r"}}, "counts": {"reproduced": 1}, "claims": claims, "budgets": []}  # fmt: skip

    section = tool["section"]([index("long", outcome="reproduced", difference=-0.005, interval=[-0.008, -0.002],
                                     level=0.975),
                               index("quick", difference=0.015, interval=[-0.01, 0.04])])  # fmt: skip
    header = next(line for line in section.splitlines() if line.startswith("| claim |"))
    assert header.endswith("| `quick` | `long` |")
    row = next(line for line in section.splitlines() if line.startswith("| the deeper ResNet is better |"))
    assert row.endswith("| ResNet-56 vs ResNet-20 | **inconclusive** +1.50 [-1.00, +4.00] | "
                        "**reproduced** -0.50 [-0.80, -0.20] (97.5%) |")  # fmt: skip
    assert "| a claim not tested | x |  | **not tested** | **not tested** |" in section
    assert "- a claim not tested: no data" in section


def test_an_index_resumed_on_another_machine_names_each_with_its_runs():
    import runpy

    tool = runpy.run_path(str(ROOT / "tools" / "readme_results.py"))
    zen5 = {"cpu": "AMD EPYC Zen 5", "cores": 2, "native_bf16": True, "precision": "bf16", "torch": "2.14.1"}
    zen3 = zen5 | {"cpu": "AMD EPYC Zen 3", "native_bf16": False, "precision": "fp32"}
    index = {"preset": "long", "experiments": {"degradation": {"seconds": 60, "command": "c", "report": "r"}},
             "counts": {"reproduced": 1}, "claims": [], "budgets": []}  # fmt: skip
    alone = tool["machine_line"](index | {"machine": zen5 | {"machines": [zen5 | {"runs": 16}]}})
    assert "on AMD EPYC Zen 5 (2 cores, native bf16), bf16, torch" in alone and "16 runs" not in alone
    both = tool["machine_line"](index | {"machine": zen5 | {"machines": [zen5 | {"runs": 10}, zen3 | {"runs": 6}]}})
    assert ("on AMD EPYC Zen 5 (2 cores, native bf16), bf16, 10 runs and AMD EPYC Zen 3 (2 cores, no native bf16), "
            "fp32, 6 runs, torch") in both  # fmt: skip


def test_a_margin_claim_read_in_looks_takes_both_its_intervals_on_hsus_df():
    looks = evidence.Looks((3, 5))
    a, b = [0.100, 0.101, 0.102], [0.1, 0.101, 0.103, 0.100, 0.102]
    for relation in ("equivalent", "not higher"):
        outcome, inner = decide(a, b, relation, 0.01, looks)
        assert inner.df == 2.0 and inner.level == pytest.approx(0.95), relation
    far = [0.20, 0.21, 0.22]  # 10 points above: outside the margin, read off the outer interval
    outcome, outer = decide(far, b, "equivalent", 0.01, looks)
    assert outcome == "contradicted" and outer.df == 2.0 and outer.level == pytest.approx(0.975)
    outcome, outer = decide(far, b, "not higher", 0.01, looks)
    assert outcome == "contradicted" and outer.df == 2.0


def test_looks_name_their_rule():
    assert evidence.Looks((2, 3)).seeds == (2, 3)  # two seeds are enough for a first look
    assert evidence.Looks((5,)).describe() == "Welch's t on Hsu's df (min n - 1), 5 seeds a side"
    assert evidence.Looks((5, 8)).describe() == (
        "Welch's t on Hsu's df (min n - 1), seeds 5 then 8 a side while the claim is open, each look at 97.5% "
        "(Bonferroni over 2 looks)")  # fmt: skip


def test_the_index_counts_the_runs_of_each_machine_they_trained_on_once_each(tmp_path):
    import json
    import shutil
    import types

    from verydeep.experiments.report import machine

    def run(name: str, cpu: str, bf16: bool) -> types.SimpleNamespace:
        folder = tmp_path / name
        shutil.copytree(Path(__file__).parent / "data" / "run-0.1.0", folder)
        record = json.loads((folder / "config.json").read_text())
        record["environment"] |= {"cpu": cpu, "cpu_cores": 2, "cpu_native_bf16": bf16}
        (folder / "config.json").write_text(json.dumps(record))
        return types.SimpleNamespace(path=folder)

    a, b, c = run("a", "Zen 3", False), run("b", "Zen 5", True), run("c", "Zen 5", True)
    shared = types.SimpleNamespace(runs={0: {"x": a, "y": b}, 1: {"y": c}})
    other = types.SimpleNamespace(runs={0: {"x": a}})  # another experiment's view of the same run: counted once
    found = machine([shared, other])
    assert found["cpu"] == "Zen 5" and found["native_bf16"] is True  # where most runs trained
    assert [(m["cpu"], m["runs"]) for m in found["machines"]] == [("Zen 5", 2), ("Zen 3", 1)]
    assert machine([types.SimpleNamespace(runs={0: {}})]) == {}
