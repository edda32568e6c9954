"""`toolgym tasks list|show|play`: browse the task registry and step an environment by hand.

`play` reads assistant turns from stdin, so it works both at a terminal and with piped input. A turn
is sent when it ends with one of the tool format's stop strings and is complete (a closed code
block, a closed answer) -- as an engine would stop -- or when a line holds a single "." (send as is,
e.g. to see how a malformed turn is answered). End of input ends the episode.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from toolgym.envs import registry
from toolgym.envs.config import EnvConfig
from toolgym.envs.parsers import list_formats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list task ids (and suites)")
    listing.add_argument("--suite", help="only the tasks of this suite")
    listing.add_argument("--split", help="only tasks (of the suite) with this split")
    show = sub.add_parser("show", help="a task's prompt, verifier, splits and an example")
    show.add_argument("id", help="task id, e.g. toolgym/arith-v0")
    _episode_arguments(show)
    play = sub.add_parser("play", help="step the environment by hand: type turns, see outputs")
    play.add_argument("id", help="task id, e.g. toolgym/arith-v0")
    _episode_arguments(play)
    play.add_argument("--seed", type=int, default=None, help="draw the instance from this seed")
    play.add_argument("--max-turns", type=int, default=EnvConfig.max_turns)
    play.add_argument("--sandbox", default="local", choices=["local", "subprocess"],
                      help="sandbox backend (default: local)")


def _episode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default=None, help="split (default: train, or the task's first split)")
    parser.add_argument("--index", type=int, default=None, help="instance index (show: default 0)")
    parser.add_argument("--tool-format", choices=list_formats(), default=None,
                        help="override the tool format")


def run(args: argparse.Namespace) -> int:
    try:
        return {"list": _list, "show": _show, "play": _play}[args.action](args)
    except (LookupError, ValueError, TypeError) as exc:
        print(f"toolgym tasks {args.action}: {exc}", file=sys.stderr)
        return 2


def _list(args: argparse.Namespace) -> int:
    ids = registry.list_tasks(suite=args.suite, split=args.split)
    width = max((len(i) for i in ids), default=10)
    for task_id in ids:
        spec = registry.task_spec(task_id)
        splits = ",".join(spec.splits)
        print(f"{task_id:<{width}}  {splits:<14}  {_one_line(spec.description, 80)}")
    if args.suite is None:
        print(f"\n{len(ids)} tasks. Suites:")
        for name in registry.list_suites():
            suite = registry.suite_spec(name)
            sizes = ", ".join(f"{split}: {len(t)}" for split, t in suite.splits.items())
            print(f"  {name:<12} ({sizes})  {_one_line(suite.description, 70)}")
    return 0


def _split(args: argparse.Namespace) -> str:
    splits = registry.task_splits(args.id)
    return args.split or ("train" if "train" in splits else splits[0])


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"tool_format": args.tool_format} if args.tool_format else {}


def _show(args: argparse.Namespace) -> int:
    spec = registry.task_spec(args.id)
    env = registry.make(args.id, split=_split(args), **_env_kwargs(args))
    family = env.family
    messages, info = env.reset(options={"index": args.index or 0})
    problem = env.problem
    assert problem is not None
    sized = getattr(family, "num_problems", None)
    count = {s: sized(s) for s in spec.splits} if callable(sized) else "generated (unbounded)"
    verifier = (type(family).verify.__doc__ or "").strip().splitlines()
    print(f"{spec.id}\n  description: {spec.description or getattr(family, 'description', '')}")
    print(f"  family:      {type(family).__module__}.{type(family).__name__} (name {family.name!r})")
    print(f"  verifier:    {type(family).__name__}.verify" + (f" -- {verifier[0]}" if verifier else ""))
    print(f"  splits:      {', '.join(spec.splits)}; instances: {count}")
    print(f"  tool format: {env.tool_format} (stop strings: {info['stop_strings']!r})")
    print(f"  registered:  by {spec.plugin or 'a register() call'}; entry point {spec.entry_point!r}")
    print(f"\nExample: split {env.split!r}, index {info['index']}")
    for message in messages:
        print(f"--- {message['role']} ---\n{message['content']}")
    print(f"--- reference answer ---\n{problem.answer}")
    if problem.reference_code:
        print(f"--- reference program ---\n{problem.reference_code}")
    env.close()
    return 0


def _play(args: argparse.Namespace) -> int:
    from toolgym.envs.sandbox import make_sandbox

    sandbox = make_sandbox(args.sandbox)
    env = registry.make(args.id, split=_split(args), max_turns=args.max_turns, sandbox=sandbox,
                        **_env_kwargs(args))
    try:
        options = {} if args.index is None else {"index": args.index}
        messages, info = env.reset(seed=args.seed, options=options)
        print(f"{args.id} ({env.split}, index {info['index']}). Type your turn; it is sent when it ends "
              f"like {info['stop_strings']} or at a line with a single '.'.")
        _print_messages(messages)
        return _play_loop(env, sys.stdin, interactive=sys.stdin.isatty())
    finally:
        env.close()
        sandbox.close()


def _play_loop(env: Any, stream: TextIO, interactive: bool) -> int:
    while True:
        turn = _read_turn(env.parser, stream, interactive)
        if turn is None:
            print("[end of input: episode abandoned]")
            return 0
        messages, reward, terminated, truncated, info = env.step(turn)
        _print_messages(messages)
        if terminated or truncated:
            parts = ", ".join(f"{k} {v:+.2f}" for k, v in info["reward_components"].items())
            print(f"[episode over: {info['finish_reason']}; answer {info['answer']!r}; "
                  f"score {info['score']:.2f}; success {info['success']}; reward {reward:.2f} ({parts}); "
                  f"turns {info['turn']}, tool calls {info['tool_calls']}]")
            return 0


def _read_turn(parser: Any, stream: TextIO, interactive: bool) -> str | None:
    """Lines until the turn is complete (see the module docstring); None at end of input."""
    lines: list[str] = []
    while True:
        if interactive:
            print("assistant> " if not lines else "... ", end="", flush=True)
        line = stream.readline()
        if not line:
            return "".join(lines) if "".join(lines).strip() else None
        if line.rstrip("\r\n") == "." and lines:
            return "".join(lines)
        lines.append(line if line.endswith("\n") else line + "\n")
        text = "".join(lines)
        ends = any(text.rstrip("\n").endswith(stop.rstrip("\n")) for stop in parser.stop_strings)
        if ends and parser.parse(text).problem not in ("unclosed_code", "unclosed_answer"):
            return text


def _print_messages(messages: list[dict[str, str]]) -> None:
    for message in messages:
        print(f"--- {message['role']} ---\n{message['content']}")


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
