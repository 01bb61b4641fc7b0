"""The decision procedures' simulation: its vectorised tests agree with the ledger's own, and it measures the
rates it claims to on outcomes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from verydeep.evidence import decide
from verydeep.procedures import Procedure, Scenario, Spread, hsu_sides, rank_sides, welch_sides


def test_the_vectorised_welch_decides_as_the_ledger_does():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 0.05, (400, 3)), rng.normal(0.3, 0.01, (400, 3)) + rng.choice([-0.1, 0.1], (400, 1))
    sides = welch_sides(a, b, 0.05)
    as_ledger = {"reproduced": -1, "contradicted": 1, "inconclusive": 0}  # the claim "a lower than b"
    assert [as_ledger[decide(list(x), list(y), "lower")[0]] for x, y in zip(a, b)] == sides.tolist()
    assert set(sides.tolist()) == {-1, 0, 1}  # the rows include every verdict


def test_hsus_degrees_of_freedom_never_decide_what_welchs_leave_open():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.3, 0.05, (2000, 5)), rng.normal(0.32, 0.005, (2000, 5))
    welch, hsu = welch_sides(a, b, 0.05), hsu_sides(a, b, 0.05)
    assert np.all((hsu == 0) | (hsu == welch)) and (hsu != 0).sum() < (welch != 0).sum()


def test_the_rank_test_decides_only_where_every_seed_of_one_side_is_beyond_the_other():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 5.0, 3.0, 7.0], [9.0, 8.0, 7.0, 6.0]])
    b = np.array([[5.0, 6.0, 7.0, 8.0], [2.0, 6.0, 4.0, 8.0], [1.0, 2.0, 3.0, 4.0]])
    assert rank_sides(a, b, 0.05).tolist() == [-1, 0, 1]  # 4 v 4 seeds: only complete separation, p = 2/70


def test_a_procedure_measures_false_verdicts_and_power_on_planted_outcomes():
    rng = np.random.default_rng(3)
    certain = Scenario("far apart", Spread(0.5, 0.001), Spread(0.2, 0.001), "higher", "")
    r = Procedure("Welch, 3", welch_sides, (3,)).run(certain, 2000, rng)
    assert r == {"false": 0.0, "power": 1.0, "seeds": 3.0}
    reversed_ = Scenario("the other way", Spread(0.2, 0.001), Spread(0.5, 0.001), "higher", "")
    assert Procedure("Welch, 3", welch_sides, (3,)).run(reversed_, 2000, rng)["false"] == 1.0
    null = Scenario("null", Spread(0.3, 0.02), Spread(0.3, 0.02), "none", "")
    r = Procedure("Welch, 5", welch_sides, (5,)).run(null, 40_000, rng)
    assert r["power"] is None and r["false"] == pytest.approx(0.05, abs=0.006)  # Welch's level, equal spreads
    # looks at 3, 5 and 8 seeds stop early where they decide and stay within the level (Bonferroni)
    r = Procedure("sequential", welch_sides, (3, 5, 8)).run(null, 40_000, rng)
    assert r["false"] < 0.05 and 7.5 < r["seeds"] <= 8
    r = Procedure("sequential", welch_sides, (3, 5, 8)).run(certain, 2000, rng)
    assert r["seeds"] == 3.0 and r["power"] == 1.0


def test_the_rule_keeps_the_level_then_takes_the_most_power_of_the_procedures_with_an_interval():
    from verydeep import procedures

    def results(rates):
        out = []
        for p in procedures.PROCEDURES:
            false, power = rates.get(p.name, (0.01, 0.3))
            for s in procedures.SCENARIOS:
                effect = s.truth != "none"
                out.append((p, s, {"false": 0.0 if effect else false, "power": power if effect else None,
                                   "seeds": 5.0}))  # fmt: skip
        return out

    names = [p.name for p in procedures.PROCEDURES]
    rank, welch3, hsu = names[2], names[0], names[-1]
    # the most powerful is a rank test (no interval) and one over the level: the next in power is chosen
    picked = procedures.choose(results({rank: (0.01, 0.9), welch3: (0.049, 0.8), hsu: (0.03, 0.5)}), 100_000)
    assert picked.name == hsu
    # at a level the Monte Carlo error cannot tell from 5%, a Welch at 4.9% on 100,000 outcomes is out too
    assert procedures.choose(results({welch3: (0.0499, 0.8)}), 100_000).name != welch3
    assert procedures.choose(results({welch3: (0.045, 0.8)}), 100_000).name == welch3
