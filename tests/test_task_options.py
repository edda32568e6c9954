"""`run.task_options`: per-task family options reach the environments the rollout workers build, for
training rollouts and for held-out evaluation, and a bad entry fails up front naming the known ones.

The environment steps are real (registry, code family, unit tests in the local sandbox); only the
policy is scripted, because what is under test is how the worker builds environments, not what a
model writes: a tiny model cannot be made to write a partly right program on demand. The worker is
built without its engine (`RolloutWorker.__new__`) for that reason; everything else is its own code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from toolgym.agents.engine import Generation
from toolgym.envs.types import TaskRequest
from toolgym.trainers.config import ConfigError, load_config
from toolgym.trainers.config.checks import check_recipe, check_task_options, run_task_ids, task_kwargs
from toolgym.trainers.config.recipes import load_recipe
from toolgym.trainers.run.driver import fit
from toolgym.trainers.run.workers import RolloutWorker, _build_sandbox

CODE, ARITH = "toolgym/code-v0", "toolgym/arith-v0"
# right on some unit tests only: count_vowels misses upper case (train), is_anagram ignores case/spaces
PARTIAL = {"count_vowels": "def count_vowels(s):\n    return sum(ch in 'aeiou' for ch in s)",
           "is_anagram": "def is_anagram(a, b):\n    return sorted(a) == sorted(b)"}
COUNT_VOWELS, IS_ANAGRAM = 5, 1  # their indices in the built-in train / heldout splits


class ScriptedPolicy:
    """Answers at once: the partial program for the problems in PARTIAL, else the reference answer."""

    def act(self, states, params):
        return [Generation([], [], "stop", self._answer(s), {}) for s in states]

    @staticmethod
    def _answer(state) -> str:
        problem = state.problem
        if state.task_id != CODE:
            return state.parser.format_answer(str(problem.answer))
        code = PARTIAL.get(problem.metadata["problem_id"], problem.answer)
        return state.parser.format_answer(f"```python\n{code}\n```")


def config(*overrides: str):
    base = ["run.tasks=[toolgym/code-v0, toolgym/arith-v0]", "rollout.group_size=2", "rollout.sandbox=local",
            "rollout.sandbox_pool=2", "rollout.env={format_weight: 0.0}"]  # reward = the verifier's score
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="module")
def sandbox():
    pool = _build_sandbox(config())
    yield pool
    pool.close()


def scripted_worker(cfg, sandbox) -> RolloutWorker:
    worker = RolloutWorker.__new__(RolloutWorker)
    worker.cfg, worker.index, worker.threads, worker.version, worker.busy_s = cfg, 0, None, 0, 0.0
    worker.engine, worker.tokenizer, worker.sandbox = ScriptedPolicy(), None, sandbox
    return worker


@pytest.mark.parametrize("reward", [None, "hard"])
def test_the_code_reward_option_reaches_rollouts_and_eval(reward: str | None, sandbox) -> None:
    options = [f"run.task_options={{{CODE}: {{reward: {reward}}}}}"] if reward else []
    cfg = config(*options)
    check_task_options(cfg)
    worker = scripted_worker(cfg, sandbox)
    requests = [TaskRequest(CODE, COUNT_VOWELS, "train"), TaskRequest(ARITH, 0, "train")]
    episodes = worker.rollout(requests, seed=0)
    assert [e.finish_reason for e in episodes] == ["answered"] * 4, [e.error for e in episodes]
    code = [e.reward for e in episodes if e.task_id == CODE]
    arith = [e.reward for e in episodes if e.task_id == ARITH]
    assert arith == [1.0, 1.0]  # the code option does not leak into another task's environment
    if reward == "hard":
        assert code == [0.0, 0.0]  # binary: not every test passes
    else:
        assert all(0.0 < r < 1.0 for r in code)  # the default: the pass rate
    result = worker.evaluate(tasks=[CODE], split="heldout", problems=IS_ANAGRAM + 1, n=1, ks=[1],
                             temperature=0.0, seed=0)
    # instance 0 answered with its reference (1.0 either way), instance 1 partly right (4 of 5 tests)
    expected = 0.5 if reward == "hard" else 0.9
    assert result["per_task"][CODE]["mean_score"] == pytest.approx(expected)


def test_deepcoder_recipe_trains_and_evaluates_on_the_binary_reward() -> None:
    for tiny in (False, True):
        cfg = load_recipe("deepcoder", tiny=tiny)
        assert cfg.run.task_options == {CODE: {"reward": "hard"}}
        assert task_kwargs(cfg) == {CODE: {"reward": "hard"}}
        check_recipe(cfg)


def test_the_run_tasks_are_the_train_and_heldout_ids_of_the_suite() -> None:
    assert run_task_ids(load_config(None, ["run.suite=code"])) == [CODE]
    assert run_task_ids(config()) == [CODE, ARITH]


@pytest.mark.parametrize("options, match", [
    ("{toolgym/math-v0: {reward: hard}}",
     r"run\.task_options\['toolgym/math-v0'\]: 'toolgym/math-v0' is not a task of this run "
     r"\(suite 'code'\); known: toolgym/code-v0"),
    ("{toolgym/code-v0: {rewrd: hard}}",
     r"run\.task_options\['toolgym/code-v0'\]: .*unknown keyword\(s\) 'rewrd'.*"
     r"not a parameter of the family factory \(path, reward, per_test_timeout, heldout_fraction\)"),
    ("{toolgym/code-v0: {reward: binary}}", r"code: unknown reward 'binary'; allowed: 'soft', 'hard'"),
    ("{toolgym/code-v0: {max_turns: 3}}", r"\['max_turns'\] are environment options.*rollout\.max_turns"),
])
def test_bad_task_options_fail_up_front_naming_the_known_ones(options: str, match: str) -> None:
    cfg = load_config(None, ["run.suite=code", f"run.task_options={options}"])
    with pytest.raises(ConfigError, match=match):
        check_task_options(cfg)
    with pytest.raises(ConfigError, match=match):
        check_recipe(cfg)


def test_fit_checks_task_options_before_building_anything(tmp_path: Path) -> None:
    cfg = load_config(None, ["run.suite=code", "run.task_options={toolgym/code-v0: {rewrd: hard}}"])
    with pytest.raises(ConfigError, match="rewrd"):
        fit(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_task_options_must_map_task_ids_to_keyword_mappings() -> None:
    with pytest.raises(ConfigError, match=r"task_options\['toolgym/code-v0'\] must be a mapping of family "
                                          r"keyword arguments"):
        load_config(None, ["run.task_options={toolgym/code-v0: hard}"])
    with pytest.raises(ConfigError, match=r"run\.task_options: expected a mapping"):
        load_config(None, ["run.task_options=[hard]"])
