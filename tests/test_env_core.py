"""ToolEnv's own logic -- turns, limits, rewards, info, sessions -- on an in-process session.

The session here is `envs_support.InProcessSession` (exec in this process, see its docstring) so that
timeouts, crashes and sandbox failures can be injected exactly; test_env_sandbox.py runs episodes on
the real local sandbox.
"""

from __future__ import annotations

import time

import pytest
from envs_support import InProcessBackend, InProcessSession, ToyAdd
from toolgym.envs.config import EnvConfig
from toolgym.envs.env import ToolEnv
from toolgym.envs.info import FINISH_REASONS, REWARD_COMPONENTS, StepInfo
from toolgym.envs.sandbox.base import ExecResult


def make_env(setup: bool = False, **config: object) -> tuple[ToolEnv, InProcessBackend]:
    backend = InProcessBackend()
    env = ToolEnv(ToyAdd(setup=setup), config=EnvConfig(**config), sandbox=backend)  # type: ignore[arg-type]
    return env, backend


@pytest.mark.parametrize("fmt", ["fenced", "xml", "json"])
def test_scripted_episode_through_each_tool_format(fmt: str) -> None:
    """A scripted policy: run the reference program, read the output, answer it."""
    env, backend = make_env(tool_format=fmt)
    messages, info = env.reset(seed=0, options={"index": 3})
    assert [m["role"] for m in messages] == ["system", "user"]
    assert env.parser.instructions in messages[0]["content"]
    assert info["tool_format"] == fmt and info["stop_strings"] == env.parser.stop_strings
    problem = env.problem
    assert problem is not None and messages[1]["content"] == problem.prompt
    obs, reward, terminated, truncated, info = env.step(env.parser.format_call(problem.reference_code))
    assert obs == [{"role": "tool", "content": str(problem.answer)}]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert (info["tool_calls"], info["finish_reason"]) == (1, None)
    obs, reward, terminated, truncated, info = env.step(env.parser.format_answer(obs[0]["content"]))
    assert (obs, terminated, truncated) == ([], True, False)
    assert info["finish_reason"] == "answered" and info["success"] and info["score"] == 1.0
    assert info["reward_components"] == {"correctness": 1.0, "format": 0.1, "budget": 0.0}
    assert reward == pytest.approx(1.1)
    assert set(info["timings"]) == {"episode_s", "sandbox_s", "verify_s"}
    assert backend.sessions[0].closed  # the session was given back at the end of the episode


def test_info_has_exactly_the_documented_keys() -> None:
    env, _ = make_env()
    env.reset(seed=1)
    _, _, _, _, info = env.step("no tool call here")
    assert set(info) == set(StepInfo.__required_keys__)
    _, _, _, _, info = env.step("<answer>0</answer>")
    assert set(info) == set(StepInfo.__required_keys__) | {"timings"}
    assert set(info["reward_components"]) == set(REWARD_COMPONENTS)
    assert info["finish_reason"] in FINISH_REASONS


def test_state_persists_across_turns_and_wrong_answer_scores_zero() -> None:
    env, _ = make_env()
    env.reset(options={"index": 0})
    env.step(env.parser.format_call("x = 20"))
    obs, *_ = env.step(env.parser.format_call("print(x + 1)"))
    assert obs[0]["content"] == "21"
    _, reward, terminated, _, info = env.step("<answer>not a number</answer>")
    assert terminated and not info["success"] and info["score"] == 0.0
    assert reward == pytest.approx(0.1) and info["answer"] == "not a number"


@pytest.mark.parametrize("action", ["", "```python\nprint(1)\n", "```bash\nls\n```\n", "x" * 1_000_000,
                                    "<answer>1</answer><answer>2</answer>", "just thinking aloud"])
def test_malformed_turns_are_observed_and_cost_the_format_bonus(action: str) -> None:
    env, backend = make_env(max_action_chars=100_000)
    env.reset(seed=2)
    obs, reward, terminated, truncated, info = env.step(action)
    assert len(obs) == 1 and obs[0]["role"] == "user" and len(obs[0]["content"]) < 400
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["action_kind"] == "invalid" and not info["well_formed"] and info["format_errors"] == 1
    assert info["format_problem"] == ("too_long" if len(action) > 100_000 else info["format_problem"])
    assert backend.sessions == []  # nothing ran
    _, reward, terminated, _, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert terminated and info["success"]
    assert info["reward_components"]["format"] == -0.1 and reward == pytest.approx(0.9)


def test_end_on_malformed_truncates_at_the_first_malformed_turn() -> None:
    """The option TRL's tool loop behaves like: no retry after a turn without a call or an answer."""
    env, backend = make_env(end_on_malformed=True)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("just thinking aloud")
    assert (terminated, truncated, info["finish_reason"]) == (False, True, "malformed")
    assert "neither a code call nor a final answer" in obs[0]["content"]
    assert reward == pytest.approx(-0.1) and backend.sessions == []
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("<answer>1</answer>")
    env.reset(seed=0)  # well-formed turns are unaffected
    env.step(env.parser.format_call("print(1)"))
    _, _, terminated, _, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert terminated and info["success"]


def test_max_turns_truncates() -> None:
    env, _ = make_env(max_turns=2)
    env.reset(seed=0)
    _, _, _, truncated, _ = env.step("hmm")
    assert not truncated
    obs, reward, terminated, truncated, info = env.step(env.parser.format_call("print(1)"))
    assert (terminated, truncated, info["finish_reason"], info["tool_calls"]) == (False, True, "max_turns", 0)
    assert "turn limit" in obs[0]["content"].lower()
    assert reward == pytest.approx(-0.1)  # no answer, one malformed turn
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("<answer>1</answer>")


def test_an_answer_on_the_last_turn_is_scored() -> None:
    env, _ = make_env(max_turns=1)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert terminated and not truncated and info["success"]


def test_max_tool_calls_warns_on_the_last_call_then_truncates() -> None:
    env, backend = make_env(max_tool_calls=2)
    env.reset(seed=0)
    obs, *_ = env.step(env.parser.format_call("print(1)"))
    assert "last code execution" not in obs[0]["content"]
    obs, *_ = env.step(env.parser.format_call("print(2)"))
    assert obs[0]["content"].startswith("2") and "last code execution (2 of 2)" in obs[0]["content"]
    obs, _, terminated, truncated, info = env.step(env.parser.format_call("print(3)"))
    assert (terminated, truncated, info["tool_calls"]) == (False, True, 2)
    assert info["finish_reason"] == "max_tool_calls"
    assert len(backend.sessions[0].calls) == 2  # the third call was not run


def test_episode_time_budget_truncates_and_bounds_the_call_timeout() -> None:
    env, backend = make_env(episode_time=0.2, call_timeout=10.0)
    env.reset(seed=0)
    env.step(env.parser.format_call("import time\ntime.sleep(0.3)"))
    assert backend.sessions[0].calls[0][1] <= 0.2  # the call got at most the remaining budget
    # (the in-process session does not enforce the timeout; the step after the budget truncates)
    env2, _ = make_env(episode_time=0.05)
    env2.reset(seed=0)
    time.sleep(0.06)
    obs, _, terminated, truncated, info = env2.step(f"<answer>{env2.problem.answer}</answer>")
    assert (terminated, truncated, info["finish_reason"], info["answer"]) == (False, True, "time", None)
    assert "time limit" in obs[0]["content"]


def test_tool_errors_timeouts_and_crashes_are_counted_and_shown() -> None:
    env, _ = make_env(traceback_lines=2)
    session = InProcessSession(script=[
        ExecResult(error_type="ZeroDivisionError", error_message="division by zero",
                   traceback="Traceback (most recent call last):\n  File \"<cell>\", line 1\n    1/0\n"
                             "ZeroDivisionError: division by zero\n"),
        ExecResult(timed_out=True, state_lost=True),
        ExecResult(crashed=True, state_lost=True),
        ExecResult(stdout="x" * 10_000),
        ExecResult(),
    ])
    env.reset(seed=0, options={"session": session})
    contents = [env.step(env.parser.format_call("pass"))[0][0]["content"] for _ in range(5)]
    assert contents[0] == "    1/0\nZeroDivisionError: division by zero"
    assert contents[1].startswith("TimeoutError") and "variables from earlier calls are gone" in contents[1]
    assert contents[2].startswith("The interpreter crashed")
    assert len(contents[3]) <= 4000 and "characters cut" in contents[3]
    assert contents[4].startswith("[no output")
    _, _, _, _, info = env.step("<answer>1</answer>")
    assert (info["tool_calls"], info["tool_errors"], info["timeouts"]) == (5, 3, 1)
    assert session.closed  # a session passed in is owned by the episode


def test_a_failing_sandbox_ends_the_episode_with_error() -> None:
    env, _ = make_env()
    session = InProcessSession(raise_on_run=ConnectionError("sandbox unreachable"))
    env.reset(seed=0, options={"session": session})
    _, _, terminated, truncated, info = env.step(env.parser.format_call("print(1)"))
    assert (terminated, truncated, info["finish_reason"]) == (False, True, "error")
    assert info["error"] == "ConnectionError: sandbox unreachable" and session.closed


def test_setup_code_runs_at_reset_and_can_be_skipped_for_a_prepared_session() -> None:
    env, backend = make_env(setup=True)
    env.reset(seed=0, options={"index": 4})
    assert backend.sessions[0].calls[0][0].startswith("a = ")
    obs, *_ = env.step(env.parser.format_call("print(a + b)"))
    assert obs[0]["content"] == str(env.problem.answer)
    base = InProcessSession()
    base.run(env.problem.setup_code)
    fork = base.fork()
    env.reset(options={"index": 4, "session": fork, "run_setup": False})
    assert fork.calls == []
    obs, *_ = env.step(env.parser.format_call("print(a + b)"))
    assert obs[0]["content"] == str(env.problem.answer)


def test_fork_group_runs_the_setup_once_and_forks_it_per_episode() -> None:
    """The rollout runner starts a GRPO group through this one call (no reach into the env's insides)."""
    env, backend = make_env(setup=True)
    sessions = env.fork_group(4, 3)
    assert sessions is not None and len(sessions) == 3
    assert len(backend.sessions) == 1 and backend.sessions[0].calls[0][0].startswith("a = ")  # setup once
    assert backend.sessions[0].closed  # the base session is closed, the forks live on
    for session in sessions:
        env.reset(options={"index": 4, "session": session, "run_setup": False})
        obs, *_ = env.step(env.parser.format_call("print(a + b)"))
        assert obs[0]["content"] == str(env.problem.answer)
    assert env.fork_group(4, 1) is None  # a single episode sets itself up at reset
    plain, plain_backend = make_env(setup=False)
    assert plain.fork_group(4, 3) is None and plain_backend.sessions == []


def test_setup_code_failure_is_a_task_bug() -> None:
    env, _ = make_env(setup=True)
    with pytest.raises(RuntimeError, match=r"setup code of instance 0 .* failed"):
        failing = InProcessSession(script=[ExecResult(error_type="NameError")])
        env.reset(options={"index": 0, "session": failing})


def test_reset_draws_the_index_from_np_random() -> None:
    env, _ = make_env()
    indices = [env.reset(seed=s)[1]["index"] for s in (5, 6, 5)]
    assert indices[0] == indices[2] and min(indices) >= 0 and max(indices) < 50
    assert len({env.reset()[1]["index"] for _ in range(20)}) > 5
    with pytest.raises(ValueError, match=r"Unknown reset option.*known: index, session, run_setup"):
        env.reset(options={"idx": 1})


def test_budget_penalty_and_weights_come_from_config() -> None:
    env, _ = make_env(turn_budget=1, budget_penalty=0.25, format_weight=0.0, correct_weight=2.0)
    env.reset(seed=0)
    env.step(env.parser.format_call("print(1)"))
    _, reward, _, _, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert info["reward_components"] == {"correctness": 2.0, "format": 0.0, "budget": -0.25}
    assert reward == pytest.approx(1.75)


def test_close_releases_the_session_and_env_is_a_context_manager() -> None:
    backend = InProcessBackend()
    with ToolEnv(ToyAdd(), sandbox=backend) as env:
        env.reset(seed=0)
        env.step(env.parser.format_call("print(1)"))
        assert not backend.sessions[0].closed
    assert backend.sessions[0].closed
    env.close()  # idempotent


def test_step_needs_reset_and_a_string() -> None:
    env, _ = make_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>1</answer>")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="str"):
        env.step(b"<answer>1</answer>")  # type: ignore[arg-type]


def test_render_ansi_shows_the_transcript() -> None:
    env = ToolEnv(ToyAdd(), sandbox=InProcessBackend(), render_mode="ansi")
    env.reset(seed=0)
    env.step(env.parser.format_call("print(6 * 7)"))
    text = env.render()
    assert "[user]" in text and "[tool]\n42" in text


@pytest.mark.parametrize(("field", "value", "match"), [
    ("max_turns", 0, "max_turns must be an integer >= 1"),
    ("call_timeout", -1, "call_timeout must be a number of seconds > 0"),
    ("tool_format", "yaml", "unknown tool format .yaml.*Registered: fenced, json, xml"),
    ("format_weight", -0.1, "format_weight must be a number >= 0"),
])
def test_config_validation_names_the_field(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EnvConfig(**{field: value})  # type: ignore[arg-type]


def test_config_replace_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"'max_turn' \(did you mean 'max_turns'\?\)"):
        EnvConfig().replace(max_turn=3)


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown split 'test'.*'train', 'heldout'"):
        ToolEnv(ToyAdd(), split="test")


def test_a_failed_setup_leaves_no_half_started_episode() -> None:
    env, _ = make_env(setup=True)
    failing = InProcessSession(script=[ExecResult(error_type="NameError")])
    with pytest.raises(RuntimeError):
        env.reset(options={"index": 0, "session": failing})
    assert failing.closed and env.problem is None
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>1</answer>")
