"""How a claim is decided over seeds: Welch's t interval of the difference of two means, and the three verdicts.

A claim compares one quantity (a final training error, say) between two configurations, each trained with the
same seeds. The difference of their means gets a 95% interval from Welch's t (which does not assume the two
spreads equal); the claim is **reproduced** when the interval lies wholly on the paper's side of zero,
**contradicted** when it lies wholly on the other, **inconclusive** otherwise. An equivalence claim ("within a
small band") states its margin and is decided by two one-sided tests (TOST): reproduced when the 90% interval lies
inside the band, contradicted when the 95% interval lies wholly outside it.

A preset may read its verdicts in ``Looks``: after a first number of seeds, then, for the claims still open,
after more (``Looks((5, 8))``); each look's interval is then at 95% split over the looks (Bonferroni) and on
Hsu's min(n_a, n_b) - 1 degrees of freedom, which keep the whole rule's false-verdict rate at 5% however
unequal the spreads (docs/calibration.md simulates it against the alternatives).

Student's t distribution is SciPy's (``scipy.stats.t``); the interval is checked against SciPy's own Welch test
and against printed tables in the tests.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

from scipy import stats

Relation = Literal["lower", "higher", "equivalent", "not higher"]
Outcome = Literal["reproduced", "contradicted", "inconclusive"]
LEVEL = 0.95


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p for Student's t with ``df`` degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), not {p}")
    return float(stats.t.ppf(p, df))


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) over seeds, with Welch's interval at ``level`` (None where a side has one value)."""

    mean_a: float
    std_a: float  # the sample standard deviation (n - 1); 0 for a single value
    n_a: int
    mean_b: float
    std_b: float
    n_b: int
    level: float
    low: float | None
    high: float | None
    df: float | None

    @property
    def value(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def p_value(self) -> float | None:
        """Two-sided p of Welch's t test of no difference."""
        if self.df is None:
            return None
        se = standard_error(self.std_a, self.n_a, self.std_b, self.n_b)
        if se == 0:
            return 0.0 if self.value else 1.0
        return float(2 * stats.t.sf(abs(self.value) / se, self.df))


def standard_error(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    return math.sqrt(std_a**2 / n_a + std_b**2 / n_b)


@dataclass(frozen=True)
class Looks:
    """When a claim's verdict is read: after ``seeds[0]`` seeds a side, then, while it is open, after each further
    count; every look's interval at 1 - 0.05 / len(seeds) (Bonferroni over the looks) on Hsu's degrees of
    freedom. The first look that decides the claim ends it."""

    seeds: tuple[int, ...]

    def __post_init__(self):
        if not self.seeds or self.seeds[0] < 2 or list(self.seeds) != sorted(set(self.seeds)):
            raise ValueError(f"looks need rising seed counts of 2 or more, not {self.seeds}")

    @property
    def level(self) -> float:
        return 1 - (1 - LEVEL) / len(self.seeds)

    def describe(self) -> str:
        if len(self.seeds) == 1:
            return f"Welch's t on Hsu's df (min n - 1), {self.seeds[0]} seeds a side"
        counts = " then ".join(map(str, self.seeds))
        return (f"Welch's t on Hsu's df (min n - 1), seeds {counts} a side while the claim is open, each look at "
                f"{100 * self.level:g}% (Bonferroni over {len(self.seeds)} looks)")  # fmt: skip


def welch(a: list[float], b: list[float], level: float = LEVEL, hsu: bool = False) -> Difference:
    """The difference of the means of ``a`` and ``b`` with its Welch-Satterthwaite interval (``hsu``: on
    min(n_a, n_b) - 1 degrees of freedom, Hsu 1938, never more than Welch-Satterthwaite's)."""
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    std_a = statistics.stdev(a) if len(a) > 1 else 0.0
    std_b = statistics.stdev(b) if len(b) > 1 else 0.0
    if len(a) < 2 or len(b) < 2:
        return Difference(mean_a, std_a, len(a), mean_b, std_b, len(b), level, None, None, None)
    va, vb = std_a**2 / len(a), std_b**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # every seed gave the same value on both sides: the difference is exact
        diff = mean_a - mean_b
        return Difference(mean_a, std_a, len(a), mean_b, std_b, len(b), level, diff, diff, math.inf)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    if hsu:
        df = float(min(len(a), len(b)) - 1)
    half = t_quantile(0.5 + level / 2, df) * se
    diff = mean_a - mean_b
    return Difference(mean_a, std_a, len(a), mean_b, std_b, len(b), level, diff - half, diff + half, df)


def decide(
    a: list[float], b: list[float], relation: Relation, margin: float | None = None, looks: Looks | None = None
) -> tuple[Outcome, Difference]:
    """The verdict on "a is ``relation`` than b" (for "equivalent": |mean a - mean b| < ``margin``; for "not
    higher": mean a - mean b < ``margin``, a non-inferiority test) and the difference it rests on: the 95%
    interval, or for equivalence and non-inferiority the 90% one that a one-sided test at 5% reads. With
    ``looks``, one look of that rule: the levels split over its looks, on Hsu's degrees of freedom."""
    level, hsu = (LEVEL, False) if looks is None else (looks.level, True)
    if relation in ("not higher", "equivalent"):
        if margin is None or margin <= 0:
            kind = "a non-inferiority" if relation == "not higher" else "an equivalence"
            raise ValueError(f"{kind} claim needs a positive margin")
        inner, outer = welch(a, b, 1 - 2 * (1 - level), hsu), welch(a, b, level, hsu)
    if relation == "not higher":
        if inner.low is None:
            return "inconclusive", inner
        if inner.high < margin:
            return "reproduced", inner
        if outer.low > margin:
            return "contradicted", outer
        return "inconclusive", inner
    if relation == "equivalent":
        if inner.low is None:
            return "inconclusive", inner
        if -margin < inner.low and inner.high < margin:
            return "reproduced", inner
        if outer.low > margin or outer.high < -margin:
            return "contradicted", outer
        return "inconclusive", inner
    difference = welch(a, b, level, hsu)
    if difference.low is None:
        return "inconclusive", difference
    below, above = difference.high < 0, difference.low > 0
    if relation == "lower":
        return ("reproduced" if below else "contradicted" if above else "inconclusive"), difference
    if relation == "higher":
        return ("reproduced" if above else "contradicted" if below else "inconclusive"), difference
    raise ValueError(f"unknown relation {relation!r}; valid: lower, higher, equivalent, not higher")


def seeds_to_decide(difference: Difference, relation: Relation, margin: float | None = None, most: int = 1000):
    """Seeds a side that would decide the claim if the difference and the spreads stayed as measured: the
    fewest n whose interval (Welch's, on 2n - 2 degrees of freedom) leaves zero, or for an equivalence the
    margin, on the side the difference lies (a non-inferiority: its margin, from either side). None when no number
    would: no difference at all, a spread of zero, or an equivalence whose difference is already outside its
    margin."""
    spread = math.sqrt(difference.std_a**2 + difference.std_b**2)
    if relation == "equivalent":
        gap = (margin or 0.0) - abs(difference.value)
    elif relation == "not higher":
        gap = abs((margin or 0.0) - difference.value)
    else:
        gap = abs(difference.value)
    if spread == 0 or gap <= 0:
        return None
    one_sided = relation == "equivalent" or (relation == "not higher" and difference.value < (margin or 0.0))
    level = 1 - 2 * (1 - LEVEL) if one_sided else LEVEL
    for n in range(2, most + 1):
        if t_quantile(0.5 + level / 2, 2 * n - 2) * spread / math.sqrt(n) < gap:
            return n
    return most + 1
