"""ToolEnv on the real local sandbox: scripted episodes, timeouts, fork snapshots, code verifiers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from envs_support import ToyAdd
from toolgym.envs.config import EnvConfig
from toolgym.envs.env import ToolEnv
from toolgym.envs.sandbox import SandboxBackend, SessionPool, make_sandbox

import toolgym


@pytest.fixture(scope="module")
def backend() -> Iterator[SandboxBackend]:
    sandbox = make_sandbox("local")
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("fmt", ["fenced", "xml", "json"])
def test_scripted_arith_episodes_on_the_default_sandbox(fmt: str) -> None:
    """The default sandbox (shared local pool); the scripted policy runs each reference program."""
    with toolgym.make("toolgym/arith-v0", tool_format=fmt) as env:
        for index in range(3):
            env.reset(options={"index": index})
            obs, *_ = env.step(env.parser.format_call(env.problem.reference_code))
            assert obs[0]["role"] == "tool"
            _, reward, terminated, _, info = env.step(env.parser.format_answer(obs[0]["content"].strip()))
            assert terminated and info["success"], (env.problem, obs)
            assert reward == pytest.approx(1.1)


def test_state_errors_and_timeouts_in_a_real_session(backend: SandboxBackend) -> None:
    env = ToolEnv(ToyAdd(), config=EnvConfig(call_timeout=1.0), sandbox=backend)
    env.reset(seed=0)
    call = env.parser.format_call
    assert env.step(call("import math\nx = math.factorial(20)"))[0][0]["content"].startswith("[no output")
    assert env.step(call("print(x)"))[0][0]["content"] == "2432902008176640000"
    error = env.step(call("def f():\n    return 1 / 0\nf()"))[0][0]["content"]
    assert error.splitlines()[-1] == "ZeroDivisionError: division by zero" and len(error.splitlines()) <= 8
    obs, _, _, _, info = env.step(call("while True:\n    pass"))
    assert obs[0]["content"].startswith("TimeoutError: the code ran longer than 1 s")
    assert (info["tool_errors"], info["timeouts"]) == (2, 1)
    obs, *_ = env.step(call("print(2 + 2)"))  # the sandbox recovered (in a fresh interpreter)
    assert obs[0]["content"] == "4"
    env.close()


def test_episodes_can_share_a_forked_snapshot(backend: SandboxBackend) -> None:
    """A group of episodes starts from one prepared session: setup runs once, each episode gets a fork."""
    family = ToyAdd(setup=True)
    env = ToolEnv(family, sandbox=backend)
    base = backend.new_session()
    try:
        assert base.run(family.problem("train", 5).setup_code).ok
        for _ in range(2):
            fork = base.fork()
            env.reset(options={"index": 5, "session": fork, "run_setup": False})
            env.step(env.parser.format_call("a = a * 1000"))  # changes this fork only
            obs, *_ = env.step(env.parser.format_call("print(a + b)"))
            assert obs[0]["content"] == str(1000 * (1000 + 35) + 2000 + 65)
            env.step(f"<answer>{obs[0]['content']}</answer>")
        assert base.run("print(a)").stdout.strip() == "1035"  # the snapshot itself is untouched
    finally:
        base.close()
        env.close()


def test_a_session_pool_is_used_and_given_back(backend: SandboxBackend) -> None:
    with SessionPool(backend, size=1) as pool, ToolEnv(ToyAdd(), sandbox=pool) as env:
        env.reset(seed=0)
        obs, *_ = env.step(env.parser.format_call("print('pooled')"))
        assert obs[0]["content"] == "pooled"


def test_a_code_task_is_verified_in_fresh_sessions(backend: SandboxBackend) -> None:
    """code-v0's verifier runs unit tests in sessions opened through the env's session factory."""
    env = toolgym.make("toolgym/code-v0", sandbox=backend)
    env.reset(options={"index": 0})
    solution = env.problem.answer
    assert isinstance(solution, str) and solution.strip()
    # The engine stops at the closing fence, so the answer arrives without its </answer>.
    _, _, terminated, _, info = env.step(f"<answer>\n```python\n{solution.strip()}\n```\n")
    assert terminated and info["success"] and info["score"] == 1.0, info
    env.reset(options={"index": 0})
    _, _, terminated, _, info = env.step("<answer>\n```python\ndef nothing():\n    pass\n```\n</answer>")
    assert terminated and not info["success"]
    env.close()
