"""Write README.md's results section from a reproduction's index (`make readme`).

    .venv/bin/python tools/readme_results.py                                  # reproductions/index.json
    .venv/bin/python tools/readme_results.py path/to/index.json --check       # exit 1 if README.md differs

The section between the two marker lines below is replaced, nothing else: the verdicts, numbers and commands
in it are `verydeep reproduce all --preset P`'s own, never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- results: written by tools/readme_results.py from reproductions/index.json; do not edit by hand -->"
END = "<!-- end of results -->"
MARKS = {"reproduced": "reproduced", "contradicted": "CONTRADICTED", "inconclusive": "inconclusive",
         "not tested": "not tested"}  # fmt: skip


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def section(index: dict) -> str:
    m = index["machine"]
    bf16 = "native bf16" if m.get("native_bf16") else "no native bf16"
    where = m.get("cuda") or f"{m.get('cpu')} ({m.get('cores')} cores, {bf16})"
    counts = ", ".join(f"{n} {outcome}" for outcome, n in index["counts"].items() if n)
    total = sum(e["seconds"] for e in index["experiments"].values())
    experiments = index["experiments"].items()
    each = ", ".join(f"{name} {minutes(e.get('train_seconds', e['seconds']))}" for name, e in experiments)
    lines = [
        BEGIN,
        "",
        f"`verydeep reproduce all --preset {index['preset']}` on {where}, {m.get('precision')}, torch "
        f"{m.get('torch')}: {counts}. Training time of each experiment's runs, each run on one core (runs shared "
        f"between experiments are trained once and counted in each): {each}; the call that wrote this index took "
        f"{minutes(total)} (it trains only what earlier calls left).",
        "",
        "| claim | source | ours (mean ± std over seeds) | difference [95% interval] | verdict |",
        "|---|---|---|---|---|",
    ]
    for c in index["claims"]:
        if c["outcome"] == "not tested":
            ours, interval = f"not tested: {c['why']}", ""
        else:
            ours = ours_of(c)
            interval = "" if c["interval"] is None else difference_of(c)
        lines.append(f"| {c['claim']} | {c['source']} | {ours} | {interval} | **{MARKS[c['outcome']]}** |")
    if index.get("budgets"):
        lines += ["", "Budgets of the inconclusive claims (the trend over presets, and what would decide each):", ""]
        lines += [f"- {b}" for b in index["budgets"]]
    lines += ["", "Each experiment's report (the paper's figures beside ours, the deviations from the paper, every "
              "run it rests on):", ""]  # fmt: skip
    for name, e in index["experiments"].items():
        lines.append(f"- {name}: `{e['command']}` -> reproductions/{e['report']}")
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
    return f"{number(c, c['difference'], True)} [{number(c, low, True)}, {number(c, high, True)}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", nargs="?", default=ROOT / "reproductions" / "index.json", type=Path)
    parser.add_argument("--readme", default=ROOT / "README.md", type=Path)
    parser.add_argument("--check", action="store_true", help="only say whether README.md is up to date")
    args = parser.parse_args()
    if not args.index.exists():
        sys.exit(f"{args.index} does not exist: run `verydeep reproduce all --preset standard` first")
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{args.readme} has no results markers; put these two lines where the section goes:\n{BEGIN}\n{END}")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    new = before + section(json.loads(args.index.read_text())) + after
    if args.check:
        return 0 if new == text else 1
    args.readme.write_text(new)
    print(f"{args.readme}: results from {args.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
