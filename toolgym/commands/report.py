"""`toolgym report RUN_DIR [RUN_DIR ...] [--out FILE]`: one self-contained HTML page of training plots.

The page embeds its PNGs (no server, no network, no JavaScript), so it can be mailed or opened from a
cluster's shared disk; several run directories are overlaid for comparison. See
toolgym.trainers.report.html for what is plotted.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories written by `toolgym train` (each holds metrics.jsonl)")
    parser.add_argument("--out", default=None,
                        help="HTML file to write (default: RUN_DIR/report.html for one run, "
                             "./report.html for several)")


def run(args: argparse.Namespace) -> int:
    from toolgym.trainers.report.html import write_report

    try:
        path = write_report(args.run_dirs, args.out)
    except FileNotFoundError as exc:
        print(f"toolgym report: {exc}", file=sys.stderr)
        return 2
    print(f"toolgym report: wrote {path}")
    return 0
