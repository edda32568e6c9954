"""`toolgym doctor`: check the installation and run a one-second sandbox self-test.

Prints the versions of the key dependencies (from package metadata, without importing them),
whether a GPU, vllm, an E2B key and bubblewrap isolation are available, prints the isolation the
local sandbox actually obtains here (namespaces, capabilities, cgroups, work-dir quota), then runs
it: state persists across calls, a timeout kills the code and the next call works, fork() copies
state. With `--model PATH` it also checks the model's chat template for token-faithful
multi-turn rollouts. Exit status 1 when something the default path needs is broken (a core
dependency missing, the sandbox self-test failing, or a requested --model check failing).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import time

CORE = ["gymnasium", "numpy", "jinja2", "torch", "transformers", "ray", "pyyaml"]
OPTIONAL = ["vllm", "e2b-code-interpreter", "reasoning-gym", "math-verify"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH",
                        help="also check this checkpoint's chat template (a model folder, run directory or "
                             "RUN_DIR/checkpoints/step_N; its training environment is printed)")
    parser.add_argument(
        "--isolation",
        default="auto",
        choices=["auto", "bwrap", "none"],
        help="sandbox isolation to self-test (default: auto, as training uses)",
    )


def run(args: argparse.Namespace) -> int:
    broken: list[str] = []
    print(f"toolgym doctor -- python {platform.python_version()} on {platform.system()} {platform.machine()}")
    _section("dependencies")
    for name in CORE:
        version = _version(name)
        _line(name, version or "MISSING (pip install toolgym)", "ok" if version else "FAIL")
        if not version:
            broken.append(f"dependency {name} is missing")
    for name in OPTIONAL:
        _line(name, _version(name) or "not installed", "info")
    _section("hardware and services")
    _line("GPU", _gpus(), "info")
    vllm = importlib.util.find_spec("vllm") is not None
    _line(
        "vllm",
        "importable" if vllm else "not installed (pip install 'toolgym[vllm]' for --engine vllm)",
        "info",
    )
    _line(
        "E2B_API_KEY",
        "set" if os.environ.get("E2B_API_KEY") else "not set (needed only for the e2b sandbox)",
        "info",
    )
    _section("sandbox")
    broken += _check_sandbox(args.isolation)
    if args.model:
        _section("model")
        broken += _check_model(args.model)
    print()
    if broken:
        print("doctor: BROKEN -- " + "; ".join(broken))
        return 1
    print("doctor: all checks passed")
    return 0


def _check_sandbox(isolation: str) -> list[str]:
    from toolgym.envs.sandbox._isolation import bwrap_problem

    problem = bwrap_problem()
    _line("bubblewrap", "working" if problem is None else problem, "ok" if problem is None else "WARN")
    if problem is not None and isolation == "auto":
        print("    sessions will run WITHOUT namespaces (isolation='none'): fine for trusted code only")
    try:
        failures, detail = _sandbox_self_test(isolation)
    except Exception as exc:  # the self-test itself failing to start is the finding
        failures, detail = [f"{type(exc).__name__}: {exc}"], ""
    if failures:
        _line("self-test", "FAILED: " + "; ".join(failures), "FAIL")
        return ["sandbox self-test failed"]
    _line("self-test", detail, "ok")
    return []


def _sandbox_self_test(isolation: str) -> tuple[list[str], str]:
    from toolgym.envs.sandbox import describe_isolation, make_sandbox

    start = time.monotonic()
    failures: list[str] = []
    backend = make_sandbox("local", isolation=isolation, limits={"timeout": 10.0})
    try:
        report = describe_isolation(backend)  # what sessions actually get here, printed before the test
        weak = report.fallback_reason is not None or report.mode == "none"
        _line("isolation obtained", report.summary, "WARN" if weak else "ok")
        session = backend.new_session()
        session.run("x = 20")
        if session.run("x * 2 + 2").stdout != "42\n":
            failures.append("state did not persist across calls")
        child = session.fork()
        if child.run("x").stdout != "20\n":
            failures.append("fork() did not copy the session state")
        child.close()
        timed = session.run("while True:\n    pass", timeout=0.3)
        if not timed.timed_out:
            failures.append(f"an infinite loop was not stopped by the timeout: {timed}")
        if session.run("'alive'").stdout != "'alive'\n":
            failures.append("the session did not recover after a timeout")
        session.close()
        mode = backend.isolation
    finally:
        backend.close()
    took = time.monotonic() - start
    return (
        failures,
        f"ok in {took:.2f} s (isolation={mode}): state persists, timeout kills, fork copies state",
    )


def _check_model(path: str) -> list[str]:
    from toolgym.commands._trained import resolve_model, trained_env

    try:
        model_dir, config = resolve_model(path)
        trained = trained_env(config) if config is not None else None
    except (FileNotFoundError, ValueError, LookupError) as exc:
        _line("chat template", str(exc), "FAIL")
        return [f"--model {path} is not a model"]
    _line("model", str(model_dir), "ok")
    if trained is not None:
        _line("trained in", trained.describe(), "info")
    path = str(model_dir)
    try:
        from toolgym.agents.chat import check_chat_template
    except ImportError as exc:
        _line(
            "chat template",
            f"cannot check: toolgym.agents.chat.check_chat_template is not available ({exc})",
            "FAIL",
        )
        return ["--model check unavailable in this version"]
    result = check_chat_template(path)
    _line("chat template", f"{path}: {result.message}", "ok" if result.ok else "FAIL")
    return [] if result.ok else [f"the chat template of {path} is not usable"]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none found (no nvidia-smi); training runs on CPU"
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    gpus = [line for line in listing.splitlines() if line.startswith("GPU")]
    torch = _version("torch") or ""
    note = " (but torch is a CPU-only build)" if gpus and "+cpu" in torch else ""
    return f"{len(gpus)} GPU(s): " + "; ".join(gpus) + note if gpus else "none found; training runs on CPU"


def _section(title: str) -> None:
    print(f"\n[{title}]")


def _line(name: str, value: str, status: str) -> None:
    print(f"  {status:>4}  {name:<22} {value}")
