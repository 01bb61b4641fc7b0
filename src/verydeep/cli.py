"""The `verydeep` command: parses arguments and calls the library. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import _ALIASES, get_entry, list_models

    reverse = {}
    for alias, name in _ALIASES.items():
        reverse.setdefault(name, []).append(alias)
    for name in list_models():
        aka = f" (alias {', '.join(reverse[name])})" if name in reverse else ""
        print(f"{name + aka:<26} {get_entry(name).description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from . import summary
    from .registry import create_model

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
        else create_model(args.model, weights=args.weights, **options)
    )
    print(summary.format_layer_table(args.model, model, args.image_size))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"verydeep {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
