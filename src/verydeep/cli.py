"""The `verydeep` command: parses arguments and calls the library. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from .version import __version__


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import entries

    for entry in entries():
        names = [*entry.aliases, *(variant for variant, _ in entry.variants)]
        aka = f" (alias {', '.join(names)})" if names else ""
        print(f"{entry.name + aka:<34} {entry.description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from . import summary
    from .weights import load_weights

    if args.paper:
        print(summary.format_paper_table(summary.paper_rows()))
        return 0
    if not args.model:
        raise SystemExit("verydeep summary: give a model name (see `verydeep list`) or --paper")
    options = {"num_classes": args.num_classes, "in_channels": args.in_channels}
    if args.head:
        options["head"] = args.head
    options = {k: v for k, v in options.items() if v is not None}
    model = (
        summary.meta_model(args.model, **options)
        if args.weights is None
        else load_weights(args.weights, args.model, options)
    )
    print(summary.format_layer_table(args.model, model, args.image_size))
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show (not None, not a switch that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value read as JSON where it can be (numbers, true/false), else as a string."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def train_config(args: argparse.Namespace):
    from .config import settings_for
    from .runs import RunDir

    given = vars(args)
    resumed = RunDir(given["out"]).read_record().train if given.get("resume") and given.get("out") else None
    return settings_for(given, resumed)


def default_out(model: str, data: str) -> str:
    """runs/MODEL-DATA-TIME; under torchrun the job's id instead of the time, the same in every process."""
    import os
    import time
    from pathlib import Path

    stamp = os.environ.get("TORCHELASTIC_RUN_ID") or time.strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{model}-{Path(data).name}-{stamp}")


def cmd_train(args: argparse.Namespace) -> int:
    from .device import Distributed
    from .launch import launch, procs_for
    from .train import CheckpointNotWritten, Interrupted, NonFiniteLoss, fit

    cfg = train_config(args)
    out = getattr(args, "out", None) or default_out(cfg.model, cfg.data)
    if not Distributed.from_env().enabled:  # not under torchrun (nor started by --procs): one process or N?
        procs = procs_for(getattr(args, "procs", None), cfg, out, getattr(args, "resume", False))
        if procs > 1:
            return launch([*args.argv, "--out", str(out)], procs)
    try:
        summary = fit(cfg, out, resume=getattr(args, "resume", False))
    except Interrupted as e:
        print(f"verydeep train: {e}", file=sys.stderr)
        return 130
    except NonFiniteLoss as e:
        print(f"verydeep train: error: {e}", file=sys.stderr)
        return 3
    except CheckpointNotWritten as e:
        print(f"verydeep train: error: {e}", file=sys.stderr)
        return 4
    if Distributed.from_env().is_main:
        print(summary.describe())
        print(f"run folder: {out}")
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .recipes import RECIPES, field_types

    S = argparse.SUPPRESS
    g = p.add_argument_group("what to train")
    g.add_argument("--model", default=S, help="a model name from `verydeep list`")
    g.add_argument(
        "--data",
        default=S,
        help="fashion-mnist (default), cifar10, cifar100, synthetic, or a folder with train/ and val/ class folders",
    )
    g.add_argument("--data-dir", default=S, help="where the data set lies (default: $VERYDEEP_DATA, Debian's folder)")
    g.add_argument("--subset", type=int, default=S, help="train on only N images (quick runs)")
    g.add_argument(
        "--image-size",
        type=int,
        default=S,
        help="image folders: the side images are trained at (default: a folder of small images, all one size up "
        "to 64 px, its own size, held in memory; larger ones a 224 crop); synthetic data: its side",
    )
    g.add_argument(
        "--val-size",
        type=int,
        default=S,
        help="images held out of the training set as val (default 5000); 0 trains on all of it, as the ResNet paper's "
        "test figures did, with no val evaluation",
    )
    g.add_argument(
        "-o",
        "--option",
        type=parse_option,
        action="append",
        default=S,
        metavar="KEY=VALUE",
        help="a model option, e.g. -o shortcut=B -o zero_init_residual=true -o batch_norm=true",
    )
    g.add_argument(
        "--init-from",
        default=S,
        metavar="RUN_OR_FILE",
        help="VGG Sec. 3.1: copy a trained configuration A's first four convs and three FC layers",
    )
    g = p.add_argument_group("how long")
    g.add_argument("--epochs", type=float, default=S, help="length in epochs (default: the recipe's iterations)")
    g.add_argument("--iters", type=int, default=S, help="length in SGD steps")
    g = p.add_argument_group("recipe (every field can be overridden; defaults are the paper's)")
    g.add_argument("--recipe", default=S, choices=list(RECIPES), help="default: the paper's recipe for the model")
    for name, hint in field_types().items():
        flag = "--" + name.replace("_", "-")
        g.add_argument(flag, default=S, metavar=name.upper(), help=f"recipe field {name} ({_type_name(hint)})")
    g = p.add_argument_group("where and how")
    g.add_argument("--out", default=S, help="run folder (default runs/MODEL-DATA-TIME)")
    g.add_argument("--resume", action="store_true", default=S, help="continue the run in --out from its checkpoint")
    g.add_argument("--config", default=S, help="a YAML or JSON file of settings (command-line flags win)")
    g.add_argument("--seed", type=int, default=S, help="random seed of initialisation, data order and augmentation")
    g.add_argument("--device", default=S, help="auto (default), cpu, cuda, cuda:N")
    g.add_argument(
        "--precision",
        default=S,
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 autocast where the hardware runs it natively, else fp32",
    )
    g.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=S,
        help="keep the contiguous (NCHW) memory format",
    )
    g.add_argument("--compile", action="store_true", default=S, help="torch.compile the model (often slower on CPU)")
    g.add_argument("--deterministic", action="store_true", default=S, help="deterministic algorithms only")
    g.add_argument("--micro-batch", type=int, default=S, help="accumulate gradients over micro-batches of this size")
    g.add_argument("--workers", type=int, default=S, help="data loader workers for image folders")
    g.add_argument("--skip-bad", action="store_true", default=S, help="skip unreadable files in image folders")
    g.add_argument(
        "--procs",
        type=int,
        default=S,
        help="processes for this run on a CPU, one thread each, every one training on its share of each batch "
        "(default: on an Intel CPU one per physical core where the batch divides evenly, measured faster than "
        "threads there; elsewhere 1, one process with a thread per core; a resumed run's own count; on a GPU 1, "
        "use torchrun)",
    )
    g.add_argument(
        "--sync-bn", action="store_true", default=S, help="BatchNorm over the whole batch, not each process's share"
    )
    g.add_argument("--log-every", type=int, default=S, help="steps between metrics rows (default 50)")
    g.add_argument("--checkpoint-every", type=int, default=S, help="steps between checkpoints (and every epoch)")
    g.add_argument(
        "--test",
        action="store_true",
        default=S,
        help="evaluate once on the test split at the end (never used for any choice)",
    )


def _type_name(hint) -> str:
    import typing

    if typing.get_origin(hint) is typing.Literal:
        return "|".join(map(str, typing.get_args(hint)))
    if typing.get_origin(hint) is tuple:
        return "comma-separated list"
    return getattr(hint, "__name__", str(hint))


def cmd_bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .bench import bench, format_result, profile_chart

    result = bench(
        args.model,
        data=args.data,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        baseline=args.baseline,
        rounds=args.rounds,
        seconds=args.seconds,
        baseline_workers=args.baseline_workers,
        procs=args.procs,
        profile=args.profile is not None,
        log=(lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
    if args.profile is not None:
        chart = profile_chart(result, Path(args.profile))
        print(f"  chart: {chart}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .experiments import ExperimentFailed, ExperimentInterrupted
    from .experiments.calibration import STUDIES, Record, train, write_report

    if args.list or not args.study:
        for name, study in STUDIES.items():
            print(f"{name:<18} {study.title}")
            for regime in study.regimes:
                print(f"{'':<20}{regime.name:<16} {regime.describe()}")
            print(f"{'':<20}budgets (images per run): {', '.join(f'{b:,}' for b in study.budgets)}; seeds "
                  f"{', '.join(map(str, study.seeds))}")  # fmt: skip
        return 0
    studies = list(STUDIES) if args.study == "all" else [args.study]
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        print(f"verydeep calibrate: error: no study {unknown[0]!r}; valid: all, {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    budgets = tuple(int(b) for b in args.budgets.split(",")) if args.budgets else None
    root, out = Path(args.runs), Path(args.out)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if not args.report_only:
            for name in studies:
                record = Record(out.parent / "calibration" / f"{name}.json")
                train(STUDIES[name], root, record, args.jobs or 1, args.data, args.data_dir, budgets, log)
    except ExperimentInterrupted as e:
        print(f"verydeep calibrate: {e}. Run the same command again to continue.", file=sys.stderr)
        return 130
    except ExperimentFailed as e:
        print(f"verydeep calibrate: error: {e}", file=sys.stderr)
        return 1
    path = write_report(STUDIES, root, out, args.data, args.data_dir)
    print(f"report: {path}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .experiments import (
        EXPERIMENTS,
        ExperimentFailed,
        ExperimentInterrupted,
        get_experiment,
        reproduce,
        reproduce_all,
    )
    from .experiments.claims import CLAIMS
    from .experiments.cluster import Submitted

    if args.claims:
        for c in CLAIMS:
            note = f" [not tested: {c.not_tested}]" if c.not_tested else ""
            print(f"{c.key:<44} {c.source:<34} {c.experiment:<16} {c.statement}{note}")
        return 0
    if args.list or not args.name:
        for experiment in EXPERIMENTS.values():
            print(f"{experiment.name:<18} {experiment.title} ({experiment.source})")
            for preset, p in experiment.presets.items():
                print(f"{'':<20}{preset:<9} {p.description}")
        return 0
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    common = dict(data=args.data, data_dir=args.data_dir, jobs=args.jobs, seeds=args.seeds, first_seed=args.seed,
                  slurm=slurm_of(args))  # fmt: skip
    try:
        if args.name == "all":
            done, index = reproduce_all(list(EXPERIMENTS.values()), args.preset, root=args.out or "reproductions",
                                        log=log, **common)  # fmt: skip
        else:
            experiment = get_experiment(args.name)
            extra = {}
            if args.depths:
                extra["depths"] = tuple(int(d) for d in args.depths.split(","))
            if args.configs:
                extra["configs"] = tuple(c.strip().upper() for c in args.configs.split(","))
            out = Path(args.out or Path("reproductions") / f"{experiment.name}-{args.preset}")
            done = [reproduce(experiment, preset=args.preset, out=out, runs_root=args.runs, args=extra, log=log,
                              **common)]  # fmt: skip
            index = out / "report.md"
    except Submitted as e:
        print(f"verydeep reproduce: {e}. Run the same command again to collect them and write the reports.",
              file=sys.stderr)  # fmt: skip
        return 0
    except ExperimentInterrupted as e:
        print(f"verydeep reproduce: {e}. Run the same command again to continue.", file=sys.stderr)
        return 130
    except ExperimentFailed as e:
        print(f"verydeep reproduce: error: {e}", file=sys.stderr)
        return 1
    for r in done:
        for v in r.verdicts:
            print(f"{v.outcome}: {v.claim.statement} ({v.a} vs {v.b})")
        for figure in r.figures:
            print(f"figure: {figure}")
    print(f"report: {index}")
    return 0


def slurm_of(args: argparse.Namespace):
    """The Slurm options of ``reproduce --executor slurm``: the --slurm-config file's keys, the flags over them."""
    from .config import read_config_file
    from .experiments.cluster import Slurm

    if args.executor != "slurm":
        return None
    settings = read_config_file(args.slurm_config) if args.slurm_config else {}
    fields = set(Slurm.__dataclass_fields__) - {"cluster"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise SystemExit(f"verydeep reproduce: error: {args.slurm_config} has unknown key(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(fields))}")  # fmt: skip
    for name in fields - {"wait"}:
        given = getattr(args, f"slurm_{name}")
        if given is not None:
            settings[name] = given
    if args.no_wait:
        settings["wait"] = False
    return Slurm(**settings)


def cmd_eval(args: argparse.Namespace) -> int:
    from .device import pick_device, resolve_precision
    from .evaluate import evaluate_protocol, format_result, parse_scales
    from .runs import RunDir
    from .trained import load_eval_data, load_trained

    trained = load_trained(args.run, args.weights, args.model)
    if trained.run is not None and trained.weights == RunDir(trained.run).checkpoint and args.weights is None:
        print(
            f"verydeep eval: {trained.run} has no model.safetensors yet; evaluating its last checkpoint",
            file=sys.stderr,
        )
    data = load_eval_data(trained, args.data, args.data_dir, args.workers, args.image_size)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    device = pick_device(args.device)
    result = evaluate_protocol(
        trained.model.to(device),
        data,
        args.split,
        args.protocol,
        trained.preprocessing,
        scales=parse_scales(args.scales),
        batch_size=args.batch_size,
        device=device,
        precision=resolve_precision(args.precision, device),
        workers=args.workers,
        progress=True,
    )
    print(format_result(result, trained.name, data.name))
    own_data = trained.record is not None and args.data in (None, trained.record.train.data)
    if trained.run is not None and own_data:
        path = RunDir(trained.run).eval_file(args.split, args.protocol)
        RunDir(trained.run).write_json(path, result.to_dict() | {"model": trained.name, "weights": str(trained.weights),
                                                                 "data": data.name})  # fmt: skip
        print(f"written to {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .device import pick_device
    from .predict import format_prediction, predict, preprocessing_of
    from .trained import load_trained

    trained = load_trained(args.run, args.weights, args.model)
    device = pick_device(args.device)
    preprocessing = preprocessing_of(trained).at_size(args.image_size)
    predictions = predict(trained.model.to(device), preprocessing, args.images, args.topk, device)
    for p in predictions:
        if p.error is not None:
            print(f"verydeep predict: error: {p.error}", file=sys.stderr)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        print("\n".join(format_prediction(p) for p in predictions if p.error is None))
    return 1 if any(p.error is not None for p in predictions) else 0


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the model (a run folder, or a weights file)")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a run folder: its model.safetensors (else checkpoint.pt) and preprocessing")
    which.add_argument(
        "--weights",
        help="a weights file: verydeep's (in its run folder) or torchvision's (ImageNet preprocessing and classes)",
    )
    g.add_argument("--model", help="the model name the weights must be for (checked; the file says it)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export, input_shape
    from .trained import load_trained

    trained = load_trained(args.run, args.weights, args.model)
    shape = input_shape(trained, args.image_size)
    model = trained.model.eval()
    path = export(model, args.out, args.format, shape)
    print(f"{model.verydeep_name}: {args.format} written to {path}")
    if args.format != "safetensors":
        c, h, w = shape
        print(f"input 'images': float32 (batch, {c}, {h}, {w}), pixels / 255 minus the training mean; output 'logits'")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verydeep",
        description="VGG and ResNet exactly as published: build, train, evaluate and reproduce the papers.",
        epilog="Run `verydeep COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"verydeep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list the models, one line each")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "summary",
        help="layers, output shapes, parameters and multiply-adds of a model; --paper: the papers' figures beside ours",
        description="Print a model's layers with output shapes, parameters and multiply-adds (counted by "
        "torch.utils.flop_counter), or with --paper every structural figure of the papers beside ours.",
    )
    p.add_argument("model", nargs="?", help="a model name from `verydeep list`")
    p.add_argument("--paper", action="store_true", help="VGG Table 2, ResNet Tables 1 and 6, 27C^2 vs 49C^2")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the paper's, 224 or 32)")
    p.add_argument("--num-classes", type=int, help="classes of the last layer (default 1000)")
    p.add_argument("--in-channels", type=int, help="input channels (default 3)")
    p.add_argument("--head", choices=["imagenet", "small"], help="VGG head (small: 28-64 px images)")
    p.add_argument("--weights", help="a safetensors or torchvision file to describe instead")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "train",
        help="train a model with a paper's recipe into a run folder",
        description="Train a model with its paper's recipe (or another) into a run folder holding config.json, "
        "metrics.csv, checkpoint.pt, model.safetensors and summary.json. Ctrl-C saves a checkpoint; "
        "--resume continues from it.",
        formatter_class=HelpFormatter,
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "bench",
        help="training images/s of our engine, and against the plain PyTorch way with --baseline",
        description="Measure end-to-end training throughput (data included) of our engine: channels_last, the "
        "precision 'auto' picks, in-memory batched augmentation. With --baseline, alternate rounds with the "
        "plain PyTorch way (torchvision's model, float32, contiguous, DataLoader with per-image PIL transforms) "
        "and report the median speedup. Also reports achieved GFLOP/s against a matrix-multiply peak "
        "measured in the same run, and the data pipeline's share of a step.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="a model name from `verydeep list`")
    p.add_argument("--data", default="synthetic", help="synthetic, fashion-mnist, cifar10, cifar100 or a folder")
    p.add_argument(
        "--image-size",
        type=int,
        help="synthetic images' side (default 224 for ImageNet nets, else 32), or the side a folder of small "
        "images is held in memory at (default its own)",
    )
    p.add_argument("--batch-size", type=int, help="default: the recipe's (32 for 224 px images on a CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="our engine's precision")
    p.add_argument("--baseline", action="store_true", help="also measure the plain PyTorch way, alternating")
    p.add_argument("--baseline-workers", type=int, default=0, help="DataLoader workers for the baseline")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds of timed steps per measurement")
    p.add_argument(
        "--procs",
        type=int,
        help="our processes on a CPU, one thread each share of the batch (default: as `verydeep train` starts, "
        "one per physical core on an Intel CPU where the batch divides, else 1; $VERYDEEP_PROCS overrides); "
        "the baseline stays 1",
    )
    p.add_argument(
        "--profile",
        nargs="?",
        const="bench-profile.png",
        metavar="PNG",
        help="also profile our step and print the share of its time in convolution, normalisation, element-wise "
        "operators, the optimizer, data and communication; the bar chart goes to PNG (default bench-profile.png)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "reproduce",
        help="reproduce one of the papers' experiments: train the runs, plot, compare with the paper",
        description="Reproduce an experiment of the papers with one command: train its runs for every seed "
        "(finished runs are reused, interrupted ones resumed), then write report.md (our numbers beside the "
        "paper's, figures, and per claim of the ledger a verdict over the seeds: reproduced, contradicted or "
        "inconclusive, with the interval of the difference), results.csv, summary.json and PNG figures. `all` runs "
        "every experiment and writes reproductions/index.md. `--list` shows the experiments, `--claims` the claims.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", nargs="?", help="the experiment (see --list), or all: every experiment, then "
                   "reproductions/index.md and index.json with a row per claim")  # fmt: skip
    p.add_argument("--list", action="store_true", help="list the experiments and their presets")
    p.add_argument("--claims", action="store_true", help="list every claim of the papers we test (the ledger)")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "standard", "long", "full"],
                   help="smoke: under a minute, checks the pipeline; quick: a few minutes on a 2-core CPU; standard: "
                   "every experiment within 3 hours on 2 cores; long: for a night, the headline claims that "
                   "standard cannot decide, in the regime docs/calibration.md picked (only the experiments that "
                   "hold them have it); full: the paper's schedule")  # fmt: skip
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, cifar10, cifar100 or an image folder")
    p.add_argument("--data-dir", help="where the data set lies")
    p.add_argument(
        "--depths", help="ResNet experiments: comma-separated depths, e.g. 20,56 (CIFAR) or 18,34 (ImageNet)"
    )
    p.add_argument("--configs", help="VGG experiments: comma-separated configurations, e.g. A,D,E")
    p.add_argument("--out", help="the experiment's folder (default reproductions/NAME-PRESET)")
    p.add_argument("--runs", help="where run folders are kept and shared between experiments "
                   "(default: runs/ beside --out)")  # fmt: skip
    p.add_argument("--jobs", type=int,
                   help="train this many runs at once, in separate processes (default: one single-threaded "
                   "process per CPU core, which trains these small nets faster in total; 1 on a GPU)")  # fmt: skip
    p.add_argument("--seeds", type=int, help="train each configuration with this many seeds and decide once, by "
                   "Welch's t at 95%% (default: the preset's seeds, and its looks where it reads its verdicts in looks "
                   "(quick, long); identical runs are never trained twice)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="the first seed (seeds run from it upwards)")
    g = p.add_argument_group("a Slurm cluster (--executor slurm; needs pip install 'verydeep[slurm]')")
    g.add_argument("--executor", default="local", choices=["local", "slurm"], help="local: processes of this "
                   "machine (default); slurm: each run not yet finished is a task of a Slurm job array, trained "
                   "into --runs, which must lie on a filesystem every node sees")  # fmt: skip
    g.add_argument("--slurm-config", help="a YAML or JSON file with the keys below (partition, time, cpus, gpus, "
                   "parallelism, retries); the flags win")  # fmt: skip
    g.add_argument("--slurm-partition", help="the partition to submit to (default: the cluster's)")
    g.add_argument("--slurm-time", type=int, help="minutes a task may run; one stopped at its limit is requeued "
                   "and resumes from its checkpoint (default 240)")  # fmt: skip
    g.add_argument("--slurm-cpus", type=int, help="CPUs per task, the threads it trains on (default 1)")
    g.add_argument("--slurm-gpus", type=int, help="GPUs per task (default 0)")
    g.add_argument("--slurm-parallelism", type=int, help="tasks of an array that run at once (default 16)")
    g.add_argument("--slurm-retries", type=int, help="times a task that ends without a result (scancel, a lost "
                   "node) is submitted again while the command waits (default 2)")  # fmt: skip
    g.add_argument("--no-wait", action="store_true", help="submit and return; the same command again waits for "
                   "what is queued, submits what failed, writes the reports once every run has finished")  # fmt: skip
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser(
        "calibrate",
        help="map where each claim can be shown: its difference across regimes and budgets on calibration seeds",
        description="Train a claim's two configurations on the calibration seeds (100 and up, never used for a "
        "verdict) in every regime (training-set size, augmentation, schedule) at every budget (images per run), "
        "cheapest budget first, then write the study's table and figures (default docs/calibration.md). Runs "
        "are ordinary run folders, reused and resumed: run the same command again to continue. `--list` shows "
        "the studies.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("study", nargs="?", help="a study (see --list), or all")
    p.add_argument("--list", action="store_true", help="list the studies, their regimes and budgets")
    p.add_argument("--budgets", help="only these budgets, comma-separated images per run (default: the study's)")
    p.add_argument("--jobs", type=int, help="train this many runs at once (default 1)")
    p.add_argument("--runs", default="calibration/runs", help="where the run folders are kept")
    p.add_argument("--out", default="docs/calibration.md", help="the report (figures beside it)")
    p.add_argument("--report-only", action="store_true", help="train nothing: write the report from what has finished")
    p.add_argument("--data", default="fashion-mnist", help="the data set")
    p.add_argument("--data-dir", help="where the data set lies")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "eval",
        help="top-1 and top-5 error under the papers' test protocols: center, tencrop, dense, multicrop, multiscale",
        description="Evaluate a trained model on a split under one of the papers' test protocols. center: the "
        "training loop's single view; tencrop: 4 corner and centre crops and their flips (ResNet Sec. 3.4; for "
        "28-32 px data, crops of the image zero-padded by 4 px); dense: VGG's fully convolutional form over the "
        "whole image at each scale, averaged with its flip (VGG Sec. 3.2); multicrop: a 5x5 grid of crops and "
        "their flips at each scale (VGG Sec. 3.2); multiscale: the fully convolutional network over the whole "
        "image at shorter sides 224-640 (ResNet Sec. 3.4). Soft-max posteriors are averaged over all views. "
        "With --run, the result is also written to the run folder as eval_SPLIT_PROTOCOL.json.",
        formatter_class=HelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--data", help="the data set or image folder (default: the run's own, split as it was)")
    p.add_argument("--data-dir", help="where the data set lies (default: the run's)")
    p.add_argument("--split", default="val", choices=["val", "test"], help="report test once, at the end")
    p.add_argument(
        "--image-size",
        type=int,
        help="with --data FOLDER: the side its images are read at (default: "
        "the run's; a folder of small images is held in memory at its own)",
    )
    p.add_argument(
        "--protocol",
        default="center",
        choices=["center", "tencrop", "dense", "multicrop", "multiscale"],
        help="how each image is viewed (see above)",
    )
    p.add_argument(
        "--scales",
        help="comma-separated shorter sides Q for dense, multicrop and multiscale (default: the paper's, "
        "256,384,512 or 224,256,384,480,640 for 224 px crops, in proportion for smaller images)",
    )
    p.add_argument("--batch-size", type=int, default=128, help="a forward pass holds this many training-size images")
    p.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"])
    p.add_argument("--workers", type=int, help="DataLoader workers decoding an image folder")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "predict",
        help="the top classes of image files, by name, with probabilities",
        description="Decode image files (JPEG, PNG, GIF, WebP), preprocess them as the model's training did "
        "(a run's mean and image size, grey for one-channel models; torchvision's ImageNet transform for its "
        "weights) and print the most probable classes. A file that cannot be read is reported and the others "
        "are still predicted; the exit status is then 1.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_arguments(p)
    p.add_argument("--topk", type=int, default=5, help="classes shown per image")
    p.add_argument(
        "--image-size",
        type=int,
        help="the side each image is cropped to (default: the run's training size, 224 for torchvision's weights; "
        "the rescale before the crop follows in proportion)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="write a trained network as ONNX (any batch size), TorchScript or safetensors",
        description="Write a trained network for deployment tools: ONNX with a free batch axis (onnxruntime, "
        "TensorRT, OpenVINO), TorchScript traced at the trained image size (LibTorch), or safetensors with the "
        "network's name and options. The network takes images as training fed them: pixels / 255 minus the "
        "training mean (config.json's 'mean').",
    )
    p.add_argument("--model", help="the model name, checked against the file (needed only for files without one)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="a safetensors, checkpoint.pt or torchvision file")
    source.add_argument("--run", help="a run folder: its model.safetensors, at the image size it was trained on")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "safetensors"])
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the run's images, else the model's)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .processes import tie_from_environment, write_traceback

    tie_from_environment()  # a process that `train --procs` started stops when the command does
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --procs starts each process with
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"verydeep {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception:
        import traceback

        if write_traceback(traceback.format_exc()):  # a started process: its parent reports it, once
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
