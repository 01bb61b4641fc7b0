"""Mutation testing of the modules that decide the project's results (`make mutants`).

    .venv/bin/python tools/mutants.py                               # every module of [tool.verydeep.mutants]
    .venv/bin/python tools/mutants.py src/verydeep/schedules.py     # one module (or several)
    .venv/bin/python tools/mutants.py src/verydeep/runs.py --names 'verydeep.runs.xǁCheckpointǁ*'   # some of them
    .venv/bin/python tools/mutants.py --report                      # only print the last results again

mutmut 3 does the work; this script only runs it one module at a time, each against the test files that
[tool.verydeep.mutants] in pyproject.toml names for it (mutmut itself takes one test selection for all
modules), and ends with every mutant that was not killed: its name, status, file:line and diff.

Per module it:
  * points mutmut's config at that module and its tests (`only_mutate`, `pytest_add_cli_args_test_selection`);
  * keeps that module's stats (which test covers which function, and how long each takes) and its mutated
    copy in mutants/stats/, so that a rerun of the module is incremental: only the mutants of functions whose
    source changed, new tests, and mutants a stopped run left unchecked are run (a module's test list changed
    in pyproject.toml: all of its mutants again);
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
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut depends on toml there
    import toml as tomllib

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


def mutated_file(module: str) -> Path:
    """Where the module's mutated copy is kept while other modules run (each run puts plain copies of the
    modules it does not mutate into mutants/src)."""
    return MUTANTS / "stats" / (module.replace("/", "__") + ".mutated")


def mutated_source(module: str) -> str | None:
    for path in (MUTANTS / module, mutated_file(module)):
        if path.exists() and GENERATED_MARKER in (text := path.read_text()):
            return text
    return None


# --- one module, in a process of its own --------------------------------------------------------------------------


def run_one(module: str, tests: list[str], max_children: int, names: list[str]) -> None:
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

    cli(["run", "--max-children", str(max_children), *names], prog_name="mutmut")


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
    keep_state()  # what an interrupted run left in place, for the module it belongs to
    copy = MUTANTS / module
    if copy.exists() and GENERATED_MARKER not in copy.read_text():
        # A run over another module left a plain copy here, newer than the source, which mutmut would take for
        # this module's mutants. Put back the mutated copy of this module's last run (with its time, so that
        # mutmut mutates the module again if the source changed since), or else let mutmut mutate it anew:
        # either way the verdicts of the functions whose source has not changed are kept, from the .meta file.
        copy.unlink()
        if mutated_file(module).exists():
            shutil.copy2(mutated_file(module), copy)
    if stats_file(module).exists():
        shutil.copy2(stats_file(module), STATS)
    ACTIVE.write_text(module)


def keep_state() -> None:
    """Move mutmut's stats back to the file of the module they belong to, and keep its mutated copy."""
    if ACTIVE.exists():
        module = ACTIVE.read_text()
        if STATS.exists():
            shutil.move(STATS, stats_file(module))
        copy = MUTANTS / module
        if copy.exists() and GENERATED_MARKER in copy.read_text():
            shutil.copy2(copy, mutated_file(module))
    STATS.unlink(missing_ok=True)
    ACTIVE.unlink(missing_ok=True)


def restore_mutated(modules: list[str]) -> None:
    """Put every module's kept mutated copy back into mutants/src, so that plain `mutmut show NAME`, `mutmut
    results` and `mutmut browse` find each module's mutants, not only those of the module that ran last."""
    for module in modules:
        copy = MUTANTS / module
        if mutated_file(module).exists() and copy.exists() and GENERATED_MARKER not in copy.read_text():
            shutil.copy2(mutated_file(module), copy)


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
    """Print each module's counts, then every mutant that was tested and not killed, with its diff; return how
    many. A mutant "not checked" (the run was stopped first) is counted, not listed: run the module again."""
    from collections import Counter

    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    not_killed = []
    totals: Counter[str] = Counter()
    print("\nmutants per module")
    for module in modules:
        data = SourceFileMutationData(path=module)
        data.load()
        counts: Counter[str] = Counter()
        for name, exit_code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[exit_code]
            status = "killed" if status == "caught by type check" else status
            counts[status] += 1
            if status not in ("killed", "not checked"):
                not_killed.append((module, name, status))
        totals.update(counts)
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s not in ("killed", "survived"))
        print(
            f"  {module}: {counts.total()} mutants, {counts['killed']} killed, {counts['survived']} survived"
            + (f", {others}" if others else "")
        )
    if len(modules) > 1:
        others = ", ".join(f"{n} {s}" for s, n in sorted(totals.items()) if s not in ("killed", "survived"))
        print(
            f"  all: {totals.total()} mutants, {totals['killed']} killed, {totals['survived']} survived"
            + (f", {others}" if others else "")
        )

    if not_killed:
        print(
            f"\n{len(not_killed)} mutants were not killed: each needs a test that tells it apart, or a comment "
            "saying why it is equivalent (`mutmut show NAME` shows one again)\n"
        )
    for module, name, status in not_killed:
        try:
            diff = get_diff_for_mutant(name, source=mutated_source(module), path=module)
            line = mutant_line(module, name, diff)
        except FileNotFoundError:  # mutants/ lost the mutated copy, or the source has changed since
            diff, line = f"(no diff: run `make mutants MODULES={module}` again)", None
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
    parser.add_argument("--names", nargs="+", default=[], metavar="NAME",
                        help="only the mutants with these names (mutmut's, wildcards allowed), e.g. "
                        "'verydeep.runs.xǁRunDirǁmeasured__mutmut_*': the functions a change touched")  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run mutmut over this one module
    args = parser.parse_args()
    os.chdir(ROOT)
    table = tests_by_module()

    if args.one:
        run_one(args.one, table[args.one], args.max_children, args.names)
        return 0

    modules = [str(Path(m)) for m in args.modules] or list(table)
    unknown = [m for m in modules if m not in table]
    if unknown:
        print(
            f"no tests are named for {', '.join(unknown)} in [tool.verydeep.mutants] of pyproject.toml; "
            f"known: {', '.join(table)}",
            file=sys.stderr,
        )
        return 2

    failed = []
    if not args.report:
        for module in modules:
            print(f"\n##### {module}  (tests: {' '.join(table[module])})", flush=True)
            ACTIVE.parent.mkdir(parents=True, exist_ok=True)
            prepare(module)
            start = time.monotonic()
            try:
                rc = subprocess.call(
                    [sys.executable, __file__, "--one", module, "--max-children", str(args.max_children)]
                    + (["--names", *args.names] if args.names else [])
                )
            finally:
                keep_state()
            print(f"##### {module}: mutmut exited {rc} after {time.monotonic() - start:.0f} s", flush=True)
            if rc != 0:
                failed.append(module)

    restore_mutated(list(table))
    report(modules)
    if failed:
        print(f"\nmutmut failed on {', '.join(failed)}: see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
