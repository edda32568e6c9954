"""`toolgym recipes list|show NAME`: what the shipped training recipes are and what they set.

So that a user can see, before spending GPU hours, which published system a recipe follows, which
model and hardware its full version assumes, and every setting with the comment that cites its source
(`show` prints the YAML file itself; `show --resolved [--tiny]` prints the validated config).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="one line per shipped recipe")
    show = sub.add_parser("show", help="a recipe's description, model, hardware and settings")
    show.add_argument("name", help="recipe name (see `toolgym recipes list`) or a path to a .yaml file")
    show.add_argument("--resolved", action="store_true",
                      help="print the validated config (defaults filled in) instead of the file")
    show.add_argument("--tiny", action="store_true", help="with --resolved: the --tiny CPU variant")


def _list() -> int:
    from toolgym.trainers.config.recipes import describe_recipe, list_recipes

    rows = [describe_recipe(name) for name in list_recipes()]
    width = max(len(r.name) for r in rows)
    for r in rows:
        where = "GPU" if r.device == "gpu" else "CPU"
        print(f"{r.name:<{width}}  {where}  {r.description}")
    print("\n`toolgym recipes show NAME` for details; `toolgym train --recipe NAME [--tiny]` to run "
          "(--tiny: a few steps on CPU with the tiny model).")
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml
    from toolgym.trainers.config.recipes import describe_recipe, load_recipe

    info = describe_recipe(args.name)
    if args.resolved:
        cfg = load_recipe(args.name, tiny=args.tiny)
        variant = " (--tiny)" if args.tiny else ""
        print(f"# recipe {info.name}{variant}, resolved\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    for label, value in (("recipe", info.name), ("description", info.description), ("source", info.source),
                         ("runs on", "GPU (use --tiny on a CPU)" if info.device == "gpu" else "CPU"),
                         ("model", info.model or "the tiny quickstart model (built locally)"),
                         ("hardware", info.hardware), ("notes", info.notes), ("file", str(info.path))):
        if value:
            print(f"{label + ':':<13}{value}")
    print()
    print(info.path.read_text())
    return 0


def run(args: argparse.Namespace) -> int:
    from toolgym.trainers.config.yaml_io import ConfigError

    try:
        if args.action == "list":
            return _list()
        if args.action == "show":
            return _show(args)
    except ConfigError as exc:
        print(f"toolgym recipes: {exc}", file=sys.stderr)
        return 2
    print("toolgym recipes: give an action: `list` or `show NAME`", file=sys.stderr)
    return 2
