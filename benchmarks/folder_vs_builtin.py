"""Fashion-MNIST as a folder of PNG files against the built-in loader: load times, training speed, memory.

    .venv/bin/python benchmarks/folder_vs_builtin.py [--root /tmp/fmnist-png] [--model resnet20]

Writes the 60,000 training and 10,000 test images as train/CLASS/N.png and val/CLASS/N.png (once), then times
the first load (decoding into memory, writing the cache) and a cached one, and runs `verydeep bench` on the
folder and on `--data fashion-mnist` in turn, each in its own process so that its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def write_folder(root: Path) -> None:
    from PIL import Image

    from verydeep.data import load_data

    if (root / "val").is_dir():
        return
    data = load_data("fashion-mnist", val_size=0)
    for split, name in (("train", "train"), ("test", "val")):
        images = data.images(split)
        for i in range(len(images)):
            image, label = images[i]
            folder = root / name / data.classes[label].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy(), mode="L").save(folder / f"{i}.png")


def timed_load(root: Path) -> float:
    """Seconds for load_data in a fresh process (the decode and cache, or the cached read)."""
    code = f"import time; t=time.perf_counter(); from verydeep.data import load_data; load_data({str(root)!r}); " \
           "print(time.perf_counter()-t)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench(data: str, model: str) -> tuple[str, float]:
    """`verydeep bench`'s line and the process's peak memory in MiB."""
    verydeep = Path(sys.executable).parent / "verydeep"
    # a fresh process whose one child is the bench, so that the peak it reports is that bench's alone
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True, "
            "check=True); print(r.stdout.strip().splitlines()[-1]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    argv = [sys.executable, "-c", code, str(verydeep), "bench", "--model", model, "--data", data, "--json"]
    line, peak = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-2:]
    result = json.loads(line)
    ips, share = result["images_per_second"], 100 * result["data_fraction"]
    summary = f"{ips:.1f} img/s ({result['precision']}, data pipeline {share:.2f}% of a step)"
    return summary, int(peak) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/fmnist-png", type=Path)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cache = Path(os.environ.setdefault("VERYDEEP_CACHE", str(args.root.parent / "verydeep-cache")))
    t0 = time.perf_counter()
    write_folder(args.root)
    print(f"folder written in {time.perf_counter() - t0:.0f} s: {args.root}")
    for old in (cache / "folders").glob("*"):
        old.unlink()
    print(f"first load (decode + cache): {timed_load(args.root):.1f} s")
    print(f"cached load: {timed_load(args.root):.2f} s")
    for _ in range(args.rounds):  # alternated, so that drift in the machine's speed falls on both
        for data in (str(args.root), "fashion-mnist"):
            line, peak = bench(data, args.model)
            print(f"{'folder' if data != 'fashion-mnist' else 'built-in'}: {line} | peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
