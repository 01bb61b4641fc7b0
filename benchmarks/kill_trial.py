"""Kill a 2-process run the ways machines kill runs, resume after each kill, and count what was left behind.

For each kind of kill (the launcher alone, as a closed terminal or a kill of the command does; one training
process, as the out-of-memory killer does; the whole tree, as a job's cgroup kill does): start the run, SIGKILL
at a random moment, wait for it to end, count the run's processes still alive after 30 s and whether its
checkpoint loads, then resume; after N kills resume to the end and compare the final weights, bit for bit, with
a run never killed.

    python benchmarks/kill_trial.py --kills 10 [--seed 0] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from verydeep.device import cpu_name
from verydeep.processes import alive, children_of
from verydeep.runs import RunDir, load_checkpoint

RUN = ["--model", "resnet20", "--subset", "3000", "--val-size", "500", "--batch-size", "32", "--iters", "600"]
RUN += ["--procs", "2", "--deterministic", "--checkpoint-every", "10", "--log-every", "10"]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VERYDEEP_PROCS"}
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "verydeep", "train", *argv], env=env, stdout=out, stderr=out)


def one_kill(kind: str, run: RunDir, log: Path, rng: random.Random) -> dict:
    """Start (or resume) the run, kill it at a random moment, and say what was left."""
    argv = ["--out", str(run.path), "--resume"] if run.checkpoint.exists() else [*RUN, "--out", str(run.path)]
    launcher = start(argv, log)
    ranks: list[int] = []
    deadline = time.monotonic() + 120
    while len(ranks) < 2 and launcher.poll() is None and time.monotonic() < deadline:
        ranks = children_of(launcher.pid)
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 8.0))  # start-up takes about 3 s: some kills land in it
    if launcher.poll() is not None:
        return {"kind": kind, "landed": False}
    step_before = run.last_step()
    victims = {"launcher": [launcher.pid], "rank": [rng.choice(ranks)], "tree": [launcher.pid, *ranks]}[kind]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    code = launcher.wait(120)
    end = time.monotonic() + 30
    while any(alive(p) for p in ranks) and time.monotonic() < end:
        time.sleep(0.1)
    left = sum(alive(p) for p in ranks)
    for pid in ranks:  # so that the trial can go on whatever this one left
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    try:
        step = load_checkpoint(run.checkpoint)["step"] if run.checkpoint.exists() else None
        corrupt = False
    except Exception:  # noqa: BLE001 -- any failure to load is a corrupt checkpoint
        step, corrupt = None, True
    return {"kind": kind, "landed": True, "exit": code, "left": left, "corrupt": corrupt, "step": step,
            "step_before": step_before}  # fmt: skip


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="kills of each kind")
    parser.add_argument("--seed", type=int, default=0, help="of the random moments")
    parser.add_argument("--json", help="write every kill's record here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="verydeep-kill-trial-"))
    straight = RunDir(folder / "straight")
    log = folder / "log.txt"
    if start([*RUN, "--out", str(straight.path)], log).wait() != 0:
        sys.exit(f"the run never killed failed: see {log}")
    print(f"CPU: {cpu_name()}; run: {' '.join(RUN)}", flush=True)
    records, rows = [], []
    for kind in ("launcher", "rank", "tree"):
        run = RunDir(folder / kind)
        kills = []
        while len(kills) < args.kills:
            record = one_kill(kind, run, log, rng)
            if run.summary.exists():  # the run ended before enough kills landed: start it again
                run = RunDir(folder / f"{kind}-{len(kills)}")
            if record["landed"]:
                kills.append(record)
                print(f"{kind}: {record}", flush=True)
        argv = ["--out", str(run.path), "--resume"] if run.checkpoint.exists() else [*RUN, "--out", str(run.path)]
        finished = start(argv, log).wait() == 0
        equal = finished and same_weights(run.weights, straight.weights)
        rows.append((kind, len(kills), sum(k["left"] for k in kills), sum(k["corrupt"] for k in kills), equal))
        records += kills
    print("\n| kill | kills | processes left running | corrupt checkpoints | final weights = never killed |")
    print("|---|---|---|---|---|")
    for kind, n, left, corrupt, equal in rows:
        print(f"| {kind} | {n} | {left} | {corrupt} | {'yes' if equal else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "run": RUN, "kills": records}, indent=1))


if __name__ == "__main__":
    main()
