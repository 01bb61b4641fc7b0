"""Write README.md's results section from a reproduction's index (`make readme`).

    .venv/bin/python tools/readme_results.py                       # results/P/index-P.json, P = quick, standard, long
    .venv/bin/python tools/readme_results.py A.json B.json --check # exit 1 if README.md differs

The section between the two marker lines below is replaced, nothing else: the verdicts, numbers and commands
in it are `verydeep reproduce all --preset P`'s own, never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from verydeep.experiments.report import MARKS, PRESETS

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- results: written by tools/readme_results.py from results/P/index-P.json; do not edit by hand -->"
END = "<!-- end of results -->"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def where(m: dict) -> str:
    bf16 = "native bf16" if m.get("native_bf16") else "no native bf16"
    return m.get("cuda") or f"{m.get('cpu')} ({m.get('cores')} cores, {bf16})"


def machine_line(index: dict) -> str:
    m = index["machine"]
    machines = m.get("machines", [])
    place = f"{where(m)}, {m.get('precision')}"
    if len(machines) > 1:  # resumed on another machine: each one, with its runs
        place = " and ".join(f"{where(each)}, {each['precision']}, {each['runs']} runs" for each in machines)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in index["counts"].items() if n)
    total = sum(e["seconds"] for e in index["experiments"].values())
    each = ", ".join(
        f"{name} {minutes(e.get('train_seconds', e['seconds']))}" for name, e in index["experiments"].items()
    )
    return (f"- `verydeep reproduce all --preset {index['preset']}` on {place}, torch "
            f"{m.get('torch')}: {counts}. Training time of each experiment's runs, each run on one core (runs shared "
            f"between experiments are trained once and counted in each): {each}; the call that wrote this index "
            f"took {minutes(total)} (it trains only what earlier calls left).")  # fmt: skip


def cell(c: dict | None) -> str:
    """One claim at one preset: its verdict and the difference with its interval."""
    if c is None:
        return ""
    if c["outcome"] == "not tested":
        return "**not tested**"
    if c.get("interval") is None:
        return f"**{MARKS[c['outcome']]}**"
    return f"**{MARKS[c['outcome']]}** {difference_of(c)}"


def section(indexes: list[dict]) -> str:
    """The claims as rows, a column per preset (smallest first), each cell its verdict and interval."""
    indexes = sorted(indexes, key=lambda i: PRESETS.index(i["preset"]) if i["preset"] in PRESETS else len(PRESETS))
    claims: dict[str, dict] = {}
    for index in indexes:
        for c in index["claims"]:
            claims.setdefault(c["key"], c)
    presets = [index["preset"] for index in indexes]
    lines = [BEGIN, "", *map(machine_line, indexes), "",
             "Each cell: the verdict, then the difference (first against second, points for errors) and its "
             "interval (95% unless stated; the report of each experiment names its test).", "",
             "| claim | source | compared | " + " | ".join(f"`{p}`" for p in presets) + " |",
             "|---|---|---|" + "---|" * len(presets)]  # fmt: skip
    for key, first in claims.items():
        found = [next((c for c in index["claims"] if c["key"] == key), None) for index in indexes]
        compared = "" if first["outcome"] == "not tested" else f"{first['a']} vs {first['b']}"
        lines.append(f"| {first['claim']} | {first['source']} | {compared} | " + " | ".join(map(cell, found)) + " |")
    why = [f"- {c['claim']}: {c['why']}" for c in claims.values() if c["outcome"] == "not tested"]
    if why:
        lines += ["", "Not tested, and why:", "", *why]
    biggest = indexes[-1]
    if biggest.get("budgets"):
        lines += ["", f"The inconclusive claims at `{biggest['preset']}`: their differences over the presets and "
                  "what the calibration measured of them:", ""]  # fmt: skip
        lines += [f"- {b}" for b in biggest["budgets"]]
    lines += ["", "Each experiment's report (the paper's figures beside ours, the deviations from the paper, every "
              "run it rests on):", ""]  # fmt: skip
    for index in indexes:
        for name, e in index["experiments"].items():
            lines.append(f"- {name}, `{index['preset']}`: `{e['command']}` -> {index.get('folder', 'reproductions')}/"
                         f"{e['report']}")  # fmt: skip
    return "\n".join(lines + ["", END])


def number(c: dict, x: float, signed: bool = False) -> str:
    """In the quantity's units: an error (a fraction) in per cent, steps whole, anything else to 4 places."""
    sign = "+" if signed else ""
    if c["unit"] == "error":
        return f"{100 * x:{sign}.2f}"
    return f"{x:{sign}.0f}" if c["unit"] == "steps" else f"{x:{sign}.4f}"


def ours_of(c: dict) -> str:
    a = f"{number(c, c['mean_a'])} ± {number(c, c['std_a'])}"
    b = f"{number(c, c['mean_b'])} ± {number(c, c['std_b'])}"
    return f"{c['a']} {a} vs {c['b']} {b}"


def difference_of(c: dict) -> str:
    low, high = c["interval"]
    level = c.get("level", 0.95)
    stated = "" if abs(level - 0.95) < 1e-9 else f" ({100 * level:g}%)"
    return f"{number(c, c['difference'], True)} [{number(c, low, True)}, {number(c, high, True)}]{stated}"


def folder(path: Path) -> str:
    """Where an index's reports lie, as the README links them: from the repository's root where it is inside."""
    path = path.resolve().parent
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("indexes", nargs="*", type=Path, help="default: results/P/index-P.json of each preset that "
                        "decides claims (quick, standard, long) found there")  # fmt: skip
    parser.add_argument("--readme", default=ROOT / "README.md", type=Path)
    parser.add_argument("--check", action="store_true", help="only say whether README.md is up to date")
    args = parser.parse_args()
    found = [ROOT / "results" / p / f"index-{p}.json" for p in ("quick", "standard", "long")]
    paths = args.indexes or [path for path in found if path.exists()]
    missing = [str(path) for path in paths if not path.exists()]
    if not paths or missing:
        sys.exit(f"{', '.join(missing) or 'no results/P/index-P.json'}: run `verydeep reproduce all --preset "
                 "standard --out results/standard` (and quick, long) first")  # fmt: skip
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{args.readme} has no results markers; put these two lines where the section goes:\n{BEGIN}\n{END}")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    indexes = [json.loads(path.read_text()) | {"folder": folder(path)} for path in paths]
    new = before + section(indexes) + after
    if args.check:
        return 0 if new == text else 1
    args.readme.write_text(new)
    print(f"{args.readme}: results from {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
