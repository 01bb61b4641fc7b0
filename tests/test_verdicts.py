"""Each experiment's verdicts on hand-made results: the paper's ordering reads reproduced, the reverse does not,
and a gap smaller than the noise the verdict computes reads within noise -- with that noise checked by hand."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from verydeep.experiments import degradation, layer_responses, shortcuts, vgg_depth, vgg_init
from verydeep.experiments.base import RunResult, RunSpec, compare_val_errors, percent
from verydeep.runs import MetricsRow, Summary


def result(label: str, model: str, group: str = "", *, train_error: float = 0.1, val_error: float = 0.1,
           windows: tuple[float, ...] = (), val_series: tuple[tuple[int, float], ...] = (),
           val_images: int | None = 5000) -> RunResult:  # fmt: skip
    """A finished run as the runner loads it. ``windows``: the training error of each logged window of the last
    of two epochs (the first epoch's windows read 0.9, far from anything compared); ``val_series``: (step, val
    error) of each epoch, by default two epochs ending at ``val_error``."""
    windows = windows or (train_error,)
    val_series = val_series or ((100, 0.5), (200, val_error))
    first, last = val_series[-2][0] if len(val_series) > 1 else 0, val_series[-1][0]
    rows = [MetricsRow(step, step / last, 0.1, train_error=0.9) for step in range(10, first, 10)]
    spacing = (last - first) // (len(windows) + 1)
    rows += [MetricsRow(first + spacing * (i + 1), 0.5, 0.1, train_error=e) for i, e in enumerate(windows)]
    rows += [MetricsRow(step, step / last, 0.1, val_error=error, images_per_second=1000.0)
             for step, error in val_series]  # fmt: skip
    rows.sort(key=lambda r: (r.step, r.is_epoch))
    summary = Summary("m", {}, "fashion-mnist", "resnet_cifar", 2.0, last, train_error, val_error, None, val_images,
                      1.0, 1000.0, "fp32", "cpu")  # fmt: skip
    return RunResult(RunSpec(label, model, group=group), Path(label), summary, rows)


def spread(centre: float, half_width: float, n: int = 8) -> tuple[float, ...]:
    """``n`` windows alternating around ``centre``: their mean is ``centre``, their stdev about ``half_width``."""
    return tuple(centre + (half_width if i % 2 else -half_width) for i in range(n))


def by_label(*results: RunResult) -> dict[str, RunResult]:
    return {r.spec.label: r for r in results}


# The degradation problem (ResNet Fig. 6): compared on the final epoch's training error


def degradation_runs(plain: tuple[float, float], resnet: tuple[float, float], half_width: float = 0.002):
    """plain-20, plain-56, ResNet-20, ResNet-56 with these final training errors (20, 56)."""
    runs = []
    for group, prefix, errors in (("plain", "plain", plain), ("ResNet", "resnet", resnet)):
        for depth, error in zip((20, 56), errors):
            runs.append(result(f"{group}-{depth}", f"{prefix}{depth}", group, train_error=error,
                               windows=spread(error, half_width)))  # fmt: skip
    return by_label(*runs)


def test_the_degradation_verdicts_follow_the_papers_ordering():
    plain, resnet = degradation.verdicts(degradation_runs(plain=(0.10, 0.20), resnet=(0.10, 0.05)), {})
    assert plain.reproduced and not plain.within_noise and "plain-56" in plain.claim and "degradation" in plain.claim
    assert resnet.reproduced and not resnet.within_noise and "ResNet-56" in resnet.claim
    assert "+10.00 points" in plain.evidence and "-5.00 points" in resnet.evidence


def test_the_degradation_verdicts_read_not_reproduced_the_other_way_round():
    plain, resnet = degradation.verdicts(degradation_runs(plain=(0.20, 0.10), resnet=(0.05, 0.10)), {})
    assert not plain.reproduced and not plain.within_noise
    assert not resnet.reproduced and not resnet.within_noise


def test_the_degradation_verdicts_take_the_shallowest_and_deepest_of_each_group_in_any_order():
    runs = degradation_runs(plain=(0.10, 0.20), resnet=(0.10, 0.05))
    runs["plain-32"] = result("plain-32", "plain32", "plain", train_error=0.5, windows=spread(0.5, 0.002))
    shuffled = dict(reversed(list(runs.items())))
    plain, resnet = degradation.verdicts(shuffled, {})
    assert "plain-56" in plain.claim and "than plain-20" in plain.claim and plain.reproduced
    assert "ResNet-56" in resnet.claim and "than ResNet-20" in resnet.claim


def test_a_gap_inside_the_windows_noise_is_within_noise():
    # the noise is two standard errors of the difference of the two runs' window means
    half_width, n = 0.02, 8
    windows = spread(0.2, half_width, n)
    stdev = math.sqrt(sum((w - 0.2) ** 2 for w in windows) / (n - 1))
    noise = 2 * math.sqrt(2 * (stdev / math.sqrt(n)) ** 2)
    assert degradation.standard_error(result("x", "plain20", windows=windows)) == pytest.approx(stdev / math.sqrt(n))
    for gap, within in ((0.9 * noise, True), (1.1 * noise, False)):
        deep = result("plain-56", "plain56", "plain", train_error=0.2 + gap, windows=spread(0.2 + gap, half_width, n))
        shallow = result("plain-20", "plain20", "plain", train_error=0.2, windows=windows)
        verdict = degradation.compare(deep, shallow, True, "claim")
        assert verdict.reproduced and verdict.within_noise is within, gap
        assert f"two standard errors of the windows' mean: {100 * noise:.2f}" in verdict.evidence


def test_the_noise_comes_from_the_last_epochs_windows_only():
    run = result("x", "plain20", windows=(0.30, 0.34, 0.32), val_series=((100, 0.5), (200, 0.4)))
    assert degradation.final_epoch_windows(run) == [0.30, 0.34, 0.32]  # not the first epoch's 0.9s
    one_epoch = result("y", "plain20", windows=(0.30, 0.34), val_series=((100, 0.4),))
    assert degradation.final_epoch_windows(one_epoch) == [0.30, 0.34]
    assert degradation.standard_error(result("z", "plain20", windows=(0.3,))) == math.inf  # one window: no spread


def test_with_three_depths_the_deepest_is_compared_with_the_shallowest_not_the_middle_one():
    runs = degradation_runs(plain=(0.10, 0.20), resnet=(0.10, 0.05))
    runs["plain-32"] = result("plain-32", "plain32", "plain", train_error=0.05, windows=spread(0.05, 0.002))
    runs["ResNet-32"] = result("ResNet-32", "resnet32", "ResNet", train_error=0.30, windows=spread(0.30, 0.002))
    plain, resnet = degradation.verdicts(runs, {})
    assert plain.reproduced and resnet.reproduced  # 56 against 20; 32 against 20 would read the other way
    assert "Final-epoch training error plain-56 20.00% vs plain-20 10.00%" in plain.evidence
    assert "Final-epoch training error ResNet-56 5.00% vs ResNet-20 10.00%" in resnet.evidence
    assert "(plain-56)" in plain.claim and "(ResNet-56)" in resnet.claim


def test_a_tie_is_no_degradation_and_no_higher_error():
    plain, resnet = degradation.verdicts(degradation_runs(plain=(0.10, 0.10), resnet=(0.10, 0.10)), {})
    assert not plain.reproduced and plain.within_noise  # "higher" is strict
    assert resnet.reproduced and resnet.within_noise  # "no higher" holds


def test_a_gap_of_exactly_the_noise_is_not_within_noise(monkeypatch):
    deep = result("plain-56", "plain56", "plain", train_error=0.75)
    shallow = result("plain-20", "plain20", "plain", train_error=0.125)
    errors = {"plain-56": 0.1875, "plain-20": 0.25}  # 2 * sqrt(0.1875^2 + 0.25^2) = 0.625 = 0.75 - 0.125 exactly
    monkeypatch.setattr(degradation, "standard_error", lambda r: errors[r.spec.label])
    verdict = degradation.compare(deep, shallow, True, "claim")
    assert verdict.reproduced and not verdict.within_noise


def window(step: int, train_error: float) -> MetricsRow:
    return MetricsRow(step, step / 100, 0.1, train_loss=1.0, train_error=train_error)


def epoch_end(step: int, val_error: float | None) -> MetricsRow:
    return MetricsRow(step, step / 100, 0.1, val_error=val_error, images_per_second=1000.0)


def test_the_last_epochs_windows_start_after_the_previous_epoch_and_fall_back_to_the_last_window():
    run = result("x", "plain20", val_series=((100, 0.5), (200, 0.4)))
    run.metrics = [window(s, e) for s, e in ((50, 0.7), (100, 0.6), (150, 0.35), (200, 0.33))]
    run.metrics += [epoch_end(100, 0.5), epoch_end(200, 0.4)]
    assert degradation.final_epoch_windows(run) == [0.35, 0.33]  # not the window logged at the epoch's start
    unvalidated = result("v", "plain20")  # --val-size 0: its epoch rows hold no validation error
    unvalidated.metrics = run.metrics[:4] + [epoch_end(100, None), epoch_end(200, None)]
    assert degradation.final_epoch_windows(unvalidated) == [0.35, 0.33]
    one_epoch = result("y", "plain20", val_series=((4, 0.4),))
    one_epoch.metrics = [window(s, 0.1 * s) for s in (1, 2, 3, 4)]
    assert degradation.final_epoch_windows(one_epoch) == pytest.approx([0.1, 0.2, 0.3, 0.4])  # from step 1 on
    stale = result("z", "plain20", val_series=((100, 0.5), (200, 0.4)))
    stale.metrics = [window(s, e) for s, e in ((40, 0.7), (80, 0.6), (100, 0.5))]
    stale.metrics += [epoch_end(100, 0.5), epoch_end(200, 0.4)]
    assert degradation.final_epoch_windows(stale) == [0.5]  # no window in the last epoch: the last one
    assert degradation.standard_error(result("w", "plain20", windows=(0.3, 0.5))) == pytest.approx(0.1)


def test_the_degradation_table_lists_plain_nets_first_by_depth_with_the_papers_figures():
    header, rows = degradation.table(degradation_runs(plain=(0.10, 0.20), resnet=(0.10, 0.05)), {})
    assert [row[0] for row in rows] == ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]
    assert rows[1][2] == "20.00" and rows[3][2] == "5.00"
    assert "6.97" in rows[3][-1] and "Table 6" in rows[3][-1]  # ResNet-56's CIFAR-10 test error


# Comparisons of validation error (VGG Table 3, ResNet Table 3)


def test_compare_val_errors_has_two_binomial_standard_errors_of_noise():
    better, worse = result("D", "vgg_d", val_error=0.10), result("C", "vgg_c", val_error=0.12)
    # 2 * sqrt(2 p (1 - p) / n) with p = 0.11: 0.01252 at n = 5000, 0.02798 at n = 1000
    verdict = compare_val_errors(by_label(better, worse), "claim", "D", "C")
    assert verdict.reproduced and not verdict.within_noise and "two standard errors: 1.25" in verdict.evidence
    better, worse = (dataclasses.replace(r, summary=dataclasses.replace(r.summary, val_images=1000))
                     for r in (better, worse))  # fmt: skip
    verdict = compare_val_errors(by_label(better, worse), "claim", "D", "C")
    assert verdict.reproduced and verdict.within_noise and "two standard errors: 2.80" in verdict.evidence
    reverse = compare_val_errors(by_label(better, worse), "claim", "C", "D")
    assert not reverse.reproduced and reverse.within_noise


def test_compare_val_errors_states_both_errors_and_counts_a_tie_as_no_higher():
    better, worse = result("D", "vgg_d", val_error=0.1234), result("C", "vgg_c", val_error=0.1234)
    verdict = compare_val_errors(by_label(better, worse), "claim", "D", "C")
    assert verdict.reproduced and verdict.within_noise  # "no higher": a tie holds, and it is noise
    assert "D 12.34% vs C 12.34%" in verdict.evidence


def test_a_gap_of_exactly_two_standard_errors_is_not_within_noise():
    # p = 0.25, n = 6: 2 * sqrt(2 * 0.25 * 0.75 / 6) = 2 * 0.25 = 0.5 exactly, the gap between 0 and 0.5
    better, worse = result("D", "vgg_d", val_error=0.0, val_images=6), result("C", "vgg_c", val_error=0.5)
    verdict = compare_val_errors(by_label(better, worse), "claim", "D", "C")
    assert verdict.reproduced and not verdict.within_noise and "two standard errors: 50.00" in verdict.evidence


def test_without_a_count_of_val_images_there_is_no_noise_margin():
    better = result("D", "vgg_d", val_error=0.10, val_images=None)
    worse = result("C", "vgg_c", val_error=0.1001)
    verdict = compare_val_errors(by_label(better, worse), "claim", "D", "C")
    assert verdict.reproduced and not verdict.within_noise and "two standard errors: 0.00" in verdict.evidence


def test_percent_writes_a_fraction_as_a_percentage_and_nothing_for_a_missing_value():
    assert percent(0.12345) == "12.35" and percent(0.0) == "0.00" and percent(None) == ""


def vgg(errors: dict[str, float]) -> dict[str, RunResult]:
    return by_label(*(result(label, vgg_depth.CONFIGS[label], val_error=e) for label, e in errors.items()))


def test_the_vgg_depth_verdicts_follow_table_3():
    paper_like = {"A": 0.296, "A-LRN": 0.297, "B": 0.287, "C": 0.281, "D": 0.270, "E": 0.250}
    verdicts = vgg_depth.verdicts(vgg(paper_like), {})
    assert [v.claim.split(":")[0] for v in verdicts] == ["depth helps", "LRN does not help", "1x1 convs are worse "
                                                         "than 3x3 at equal depth"]  # fmt: skip
    assert [v.reproduced for v in verdicts] == [True, True, True]
    reversed_table = {"A": 0.25, "A-LRN": 0.24, "B": 0.26, "C": 0.26, "D": 0.28, "E": 0.30}
    assert [v.reproduced for v in vgg_depth.verdicts(vgg(reversed_table), {})] == [False, False, False]
    assert [v.within_noise for v in vgg_depth.verdicts(vgg(reversed_table), {})] == [False, True, False]


def test_the_vgg_depth_verdicts_leave_out_claims_whose_configurations_were_not_trained():
    verdicts = vgg_depth.verdicts(vgg({"A": 0.3, "E": 0.2, "D": 0.25}), {})
    assert [v.claim.split(":")[0] for v in verdicts] == ["depth helps"]


def test_the_shortcut_verdicts_follow_table_3():
    def options(a: float, b: float, c: float):
        return by_label(*(result(f"option {o}", "resnet20", "ResNet", val_error=e) for o, e in zip("ABC", (a, b, c))))

    b_vs_a, c_vs_b = shortcuts.verdicts(options(0.30, 0.25, 0.20), {})
    assert b_vs_a.reproduced and c_vs_b.reproduced and "B " in b_vs_a.claim and "C " in c_vs_b.claim
    b_vs_a, c_vs_b = shortcuts.verdicts(options(0.20, 0.25, 0.30), {})
    assert not b_vs_a.reproduced and not c_vs_b.reproduced
    b_vs_a, c_vs_b = shortcuts.verdicts(options(0.20, 0.25, 0.20), {})
    assert not b_vs_a.reproduced and c_vs_b.reproduced


def test_the_vgg_and_shortcut_claims_say_what_the_papers_claim():
    claims = [v.claim for v in vgg_depth.verdicts(vgg({"A": 0.3, "A-LRN": 0.3, "C": 0.2, "D": 0.2, "E": 0.2}), {})]
    assert claims == [
        "depth helps: E (19 weight layers) has no higher error than A (11)",
        "LRN does not help: A-LRN is no better than A",
        "1x1 convs are worse than 3x3 at equal depth: C has no lower error than D",
    ]
    (only,) = vgg_depth.verdicts(vgg({"A": 0.3, "E": 0.2}), {})  # exactly the two a claim needs
    assert only.claim.startswith("depth helps")
    runs = by_label(*(result(f"option {o}", "resnet20", "ResNet") for o in "ABC"))
    assert [v.claim for v in shortcuts.verdicts(runs, {})] == [
        "B (projections where dimensions grow) is no worse than A (zero-padding)",
        "C (projections everywhere) is no worse than B",
    ]


# Initialising from A (VGG Sec. 3.1): steps to reach A's final validation error


def init_runs(warm: tuple[tuple[int, float], ...], cold: tuple[tuple[int, float], ...], target: float = 0.2):
    return by_label(
        result("A", "vgg_a", "A", val_error=target),
        result("D random", "vgg_d", "D", val_series=cold, val_error=cold[-1][1]),
        result("D from A", "vgg_d", "D", val_series=warm, val_error=warm[-1][1]),
    )


@pytest.mark.parametrize(
    ("warm", "cold", "holds"),
    [
        (((10, 0.25), (20, 0.19), (30, 0.15)), ((10, 0.40), (20, 0.30), (30, 0.20)), True),  # 20 steps before 30
        (((10, 0.40), (20, 0.30), (30, 0.20)), ((10, 0.25), (20, 0.19), (30, 0.15)), False),  # the other way
        (((10, 0.30), (20, 0.20)), ((10, 0.30), (20, 0.25)), True),  # reaches it exactly; random never
        (((10, 0.30), (20, 0.25)), ((10, 0.30), (20, 0.21)), False),  # neither reaches it
        (((10, 0.30), (20, 0.19)), ((10, 0.30), (20, 0.18)), False),  # both at the same step: not faster
    ],
)
def test_the_init_from_a_verdict_compares_steps_to_reach_as_final_error(warm, cold, holds):
    runs = init_runs(warm, cold)
    (verdict,) = vgg_init.verdicts(runs, {})
    assert verdict.reproduced is holds and verdict.claim.startswith("D initialised from A trains faster")


def test_the_init_from_a_evidence_gives_the_steps_and_the_final_errors():
    (verdict,) = vgg_init.verdicts(init_runs(((10, 0.25), (20, 0.19)), ((10, 0.40), (20, 0.30))), {})
    assert verdict.evidence == (
        "Steps to reach A's final validation error (20.00%): from A 20, random never; final validation error "
        "19.00% vs 30.00%."
    )
    (verdict,) = vgg_init.verdicts(init_runs(((10, 0.30), (20, 0.25)), ((10, 0.19), (20, 0.15))), {})
    assert "from A never, random 10;" in verdict.evidence


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


def test_steps_to_reach_is_the_first_evaluated_step_at_or_below_the_target():
    run = result("x", "vgg_d", val_series=((10, 0.5), (20, 0.2), (30, 0.1), (40, 0.2)))
    assert vgg_init.steps_to_reach(run, 0.2) == 20
    assert vgg_init.steps_to_reach(run, 0.15) == 30
    assert vgg_init.steps_to_reach(run, 0.05) is None
    header, rows = vgg_init.table(init_runs(((10, 0.30), (20, 0.20)), ((10, 0.30), (20, 0.25))), {})
    assert header == ["run", "train error %", "val error %", "steps to reach A's val error"]
    assert rows == [["A", "10.00", "20.00", ""], ["D random", "10.00", "25.00", "never"],
                    ["D from A", "10.00", "20.00", "20"]]  # fmt: skip


# Strength of layer responses (ResNet Fig. 7): the mean std of the 3x3 layers' responses


def responses(plain20: float, resnet20: float, plain56: float, resnet56: float) -> tuple[dict, dict]:
    runs = degradation_runs(plain=(0.1, 0.2), resnet=(0.1, 0.05))
    stds = {"plain-20": plain20, "ResNet-20": resnet20, "plain-56": plain56, "ResNet-56": resnet56}
    # each layer's std varies around the run's level; only the mean decides
    return runs, {"responses": {label: [level * 1.5, level * 0.5, level] for label, level in stds.items()}}


def test_the_layer_response_verdicts_follow_fig_7():
    verdicts = layer_responses.verdicts(*responses(plain20=1.0, resnet20=0.6, plain56=1.2, resnet56=0.4))
    assert [v.claim for v in verdicts] == [
        "ResNet-20 responds more weakly than plain-20",
        "ResNet-56 responds more weakly than plain-56",
        "the deeper ResNet-56 responds more weakly than ResNet-20",
    ]
    assert [v.reproduced for v in verdicts] == [True, True, True]
    assert "0.400 vs 0.600" in verdicts[2].evidence


def test_the_layer_response_verdicts_read_not_reproduced_the_other_way_round():
    verdicts = layer_responses.verdicts(*responses(plain20=0.6, resnet20=1.0, plain56=0.4, resnet56=1.2))
    assert [v.reproduced for v in verdicts] == [False, False, False]
    verdicts = layer_responses.verdicts(*responses(plain20=1.0, resnet20=0.5, plain56=1.0, resnet56=0.6))
    assert [v.reproduced for v in verdicts] == [True, True, False]  # ResNets weaker, but the deeper one not


def test_equal_responses_are_not_weaker_and_one_depth_has_no_depth_claim():
    verdicts = layer_responses.verdicts(*responses(plain20=1.0, resnet20=1.0, plain56=0.8, resnet56=1.0))
    assert [v.reproduced for v in verdicts] == [False, False, False]  # "more weakly" is strict, both ways
    assert verdicts[0].evidence == "Mean response std ResNet-20 1.000 vs plain-20 1.000."
    runs, analysis = responses(plain20=1.0, resnet20=0.5, plain56=1.0, resnet56=0.5)
    shallow = {label: r for label, r in runs.items() if label.endswith("-20")}
    assert [v.claim for v in layer_responses.verdicts(shallow, analysis)] == [
        "ResNet-20 responds more weakly than plain-20"
    ]
