"""Mutation testing of the modules that decide the project's results (`make mutants`).

    .venv/bin/python tools/mutants.py                               # every module of [tool.verydeep.mutants]
    .venv/bin/python tools/mutants.py src/verydeep/schedules.py     # one module (or several)
    .venv/bin/python tools/mutants.py --report                      # only print the last results again

mutmut 3 does the work; this script only runs it one module at a time, each against the test files that
[tool.verydeep.mutants] in pyproject.toml names for it (mutmut itself takes one test selection for all
modules), and ends with every mutant that was not killed: its name, status, file:line and diff.

Per module it:
  * points mutmut's config at that module and its tests (`only_mutate`, `pytest_add_cli_args_test_selection`);
  * keeps that module's stats (which test covers which function, and how long each takes) in
    mutants/stats/<module>.json, so that a rerun of the same module is incremental: only functions whose
    source changed, or whose tests changed, are tested again;
  * runs each mutant's covering tests fastest first, so that a killed mutant rarely waits for a slow test.

mutmut copies src/ and tests/ into mutants/ and runs pytest there with mutants/src first on sys.path and the
editable install's src/ taken off it, so the in-process tests import the mutated package (mutmut's "forced
fail" step checks that before any mutant runs). A test that starts a new interpreter (`sys.executable -m ...`,
`-c "import verydeep"`) gets the editable install, i.e. the unmutated code: such a test can never kill a mutant.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = Path("mutants")
STATS = MUTANTS / "mutmut-stats.json"
ACTIVE = MUTANTS / "stats" / "active"  # the module whose stats are in STATS now
GENERATED_MARKER = "# mutmut generated"  # on every line of a file that mutmut has mutated


def tests_by_module() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["verydeep"]["mutants"]["tests"]


def stats_file(module: str) -> Path:
    return MUTANTS / "stats" / (module.replace("/", "__") + ".json")


# --- one module, in a process of its own --------------------------------------------------------------------------


def run_one(module: str, tests: list[str], max_children: int) -> None:
    """Run `mutmut run` over `module` with `tests`, in this process (the parent runs each module in a fresh one)."""
    if not sys.stdout.isatty():
        quiet_progress()
    from mutmut.configuration import config
    from mutmut.state import state
    from mutmut.workers import isolation

    cfg = config()
    cfg.only_mutate = [module]
    cfg.pytest_add_cli_args_test_selection = list(tests)

    submit = isolation.ForkServerRunner.submit

    def fastest_first(self, mutant_name, tests, cpu_time_limit, estimated_time):
        tests = sorted(tests, key=lambda test: state().duration_by_test.get(test, 0.0))
        return submit(self, mutant_name, tests, cpu_time_limit, estimated_time)

    isolation.ForkServerRunner.submit = fastest_first

    from mutmut.__main__ import cli

    cli(["run", "--max-children", str(max_children)], prog_name="mutmut")


def quiet_progress(every_s: float = 30.0) -> None:
    """Into a log or a pipe, mutmut's spinner (redrawn ten times a second with \\r) becomes one line per step and
    a progress line every `every_s` seconds. Must run before the rest of mutmut is imported."""
    import mutmut.ui.terminal

    last = {"text": "", "at": 0.0}

    def print_status(text: str, *, force_output: bool = False) -> None:
        progress = text[:1].isdigit()  # "12/130  🎉 10 ..."
        now = time.monotonic()
        if force_output or (progress and now - last["at"] >= every_s) or (not progress and text != last["text"]):
            print(text, file=sys.__stdout__, flush=True)
            last["text"], last["at"] = text, now

    mutmut.ui.terminal.print_status = print_status


def prepare(module: str) -> None:
    """Give mutmut the state it needs for `module`, as the last run of that same module left it."""
    copy = MUTANTS / module
    if copy.exists() and GENERATED_MARKER not in copy.read_text():
        # A run over another module left a plain copy here, newer than the source, which mutmut would take
        # for this module's mutants; without it mutmut mutates the module again (and keeps the verdicts
        # of the functions whose source has not changed, from the .meta file).
        copy.unlink()
    keep_stats()  # what an interrupted run left in place, for the module it belongs to
    if stats_file(module).exists():
        shutil.copy2(stats_file(module), STATS)
    ACTIVE.write_text(module)


def keep_stats() -> None:
    """Move mutmut's stats back to the file of the module they belong to."""
    if STATS.exists() and ACTIVE.exists():
        shutil.move(STATS, stats_file(ACTIVE.read_text()))
    STATS.unlink(missing_ok=True)
    ACTIVE.unlink(missing_ok=True)


# --- the report ---------------------------------------------------------------------------------------------------


def mutant_line(module: str, mutant: str, diff: str) -> int | None:
    """The line of `module` that `mutant` changes: the first removed line of its diff, looked up in its function."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, class_name = orig_function_and_class_names_from_key(mutant)
    source = Path(module).read_text()
    lines = source.splitlines()
    span = None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and class_name is not None and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == function:
                    span = (item.lineno, item.end_lineno)
        elif class_name is None and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            span = span or (node.lineno, node.end_lineno)
    if span is None:
        return None
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    for text in removed:
        for number in range(span[0], span[1] + 1):
            if text and lines[number - 1].strip() == text:
                return number
    return span[0]


def report(modules: list[str]) -> int:
    """Print each module's counts, then every mutant that was not killed with its diff; return how many."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    not_killed = []
    print("\nmutants per module (killed / survived / other: no tests, timeout, suspicious, not checked)")
    totals = {"total": 0, "killed": 0, "survived": 0, "other": 0}
    for module in modules:
        data = SourceFileMutationData(path=module)
        data.load()
        counts = {"total": 0, "killed": 0, "survived": 0, "other": 0}
        for name, exit_code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[exit_code]
            counts["total"] += 1
            if status in ("killed", "caught by type check"):
                counts["killed"] += 1
                continue
            counts["survived" if status == "survived" else "other"] += 1
            not_killed.append((module, name, status))
        for key in totals:
            totals[key] += counts[key]
        print(f"  {module}: {counts['total']} mutants, {counts['killed']} killed, {counts['survived']} survived"
              + (f", {counts['other']} other" if counts["other"] else ""))
    print(f"  all: {totals['total']} mutants, {totals['killed']} killed, {totals['survived']} survived, "
          f"{totals['other']} other")

    if not_killed:
        print(f"\n{len(not_killed)} mutants were not killed: each needs a test that tells it apart, or a comment "
              "saying why it is equivalent (`mutmut show NAME` shows one again)\n")
    for module, name, status in not_killed:
        diff = get_diff_for_mutant(name, path=module)
        line = mutant_line(module, name, diff)
        print(f"=== {name}: {status}  ({module}:{line})")
        print(diff)
        print()
    return len(not_killed)


# --- the command ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="source files, e.g. src/verydeep/schedules.py (default: all)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--report", action="store_true", help="only print the results of the last runs")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run mutmut over this one module
    args = parser.parse_args()
    os.chdir(ROOT)
    table = tests_by_module()

    if args.one:
        run_one(args.one, table[args.one], args.max_children)
        return 0

    modules = [str(Path(m)) for m in args.modules] or list(table)
    unknown = [m for m in modules if m not in table]
    if unknown:
        print(f"no tests are named for {', '.join(unknown)} in [tool.verydeep.mutants] of pyproject.toml; "
              f"known: {', '.join(table)}", file=sys.stderr)
        return 2

    failed = []
    if not args.report:
        for module in modules:
            print(f"\n##### {module}  (tests: {' '.join(table[module])})", flush=True)
            ACTIVE.parent.mkdir(parents=True, exist_ok=True)
            prepare(module)
            start = time.monotonic()
            try:
                rc = subprocess.call([sys.executable, __file__, "--one", module,
                                      "--max-children", str(args.max_children)])
            finally:
                keep_stats()
            print(f"##### {module}: mutmut exited {rc} after {time.monotonic() - start:.0f} s", flush=True)
            if rc != 0:
                failed.append(module)

    report(modules)
    if failed:
        print(f"\nmutmut failed on {', '.join(failed)}: see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
