"""Benchmark: ToolEnv's own per-step overhead, and full scripted episodes per second on arith.

    python benchmarks/env_step.py [--steps 20000] [--episodes 200] [--out benchmarks/results/env_step.json]

step_overhead_us: mean wall time of `env.step(turn)` for a code turn, with a no-op session whose
    `run` returns a fixed result at once -- so it measures parsing, limits, output formatting and
    info building, not the sandbox (target: < 100 us). The answer and malformed steps are reported
    too (the answer step includes the toy verifier, a string comparison).
episodes_per_s: complete episodes (reset, one code turn running the instance's reference program in
    the real local sandbox, one answer turn verified) by a scripted policy on toolgym/arith-v0, one
    environment in one thread; `episodes_per_s_4_threads` runs four environments concurrently.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)
from toolgym.envs.config import EnvConfig
from toolgym.envs.env import ToolEnv
from toolgym.envs.sandbox.base import ExecResult
from toolgym.envs.task import Problem, Score

import toolgym

CODE_TURN = ("I will compute the product first, then reduce it modulo m.\n```python\n"
             "a, b, m = 48213, 91877, 1000003\nproduct = a * b\nprint(product, product % m)\n```\n")


class NoopSession:
    """A session that runs nothing: isolates the environment's overhead from the sandbox's."""

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        return ExecResult(stdout="4429665801 429652573\n")

    def fork(self) -> NoopSession:
        return self

    def close(self) -> None:
        pass


class NoopBackend:
    name = "noop"

    def new_session(self) -> NoopSession:
        return NoopSession()

    def close(self) -> None:
        pass


class Constant:
    """A one-problem family, so that reset and verify cost next to nothing."""

    name = "constant"
    splits = ("train",)
    tool_format = "fenced"

    def problem(self, split: str, index: int) -> Problem:
        return Problem(prompt="What is 48213 * 91877 mod 1000003?", answer="429652573", index=index)

    def verify(self, problem: Problem, answer: str, new_session: object) -> Score:
        return Score(float(answer == problem.answer))


def time_steps(env: ToolEnv, turn: str, n: int, per_episode: int) -> list[float]:
    """Seconds per `env.step(turn)`, resetting every `per_episode` steps (resets not timed)."""
    samples = []
    while len(samples) < n:
        env.reset(options={"index": 0})
        for _ in range(per_episode):
            start = time.perf_counter()
            env.step(turn)
            samples.append(time.perf_counter() - start)
    return samples


def step_overhead(steps: int) -> dict[str, float]:
    config = EnvConfig(max_turns=10_000, max_tool_calls=10_000)
    env = ToolEnv(Constant(), config=config, sandbox=NoopBackend())
    time_steps(env, CODE_TURN, 2000, 100)  # warm-up
    code = time_steps(env, CODE_TURN, steps, 100)
    malformed = time_steps(env, "I think the answer is 429652573.", steps // 4, 100)
    answer = time_steps(env, "<answer>429652573</answer>", steps // 4, 1)
    us = 1e6
    return {
        "step_overhead_us": statistics.fmean(code) * us,
        "step_overhead_p50_us": statistics.median(code) * us,
        "step_overhead_p99_us": statistics.quantiles(code, n=100)[98] * us,
        "malformed_step_us": statistics.fmean(malformed) * us,
        "answer_step_us": statistics.fmean(answer) * us,
    }


def scripted_episode(env: ToolEnv, index: int) -> bool:
    env.reset(options={"index": index})
    problem = env.problem
    assert problem is not None and problem.reference_code
    obs, *_ = env.step(env.parser.format_call(problem.reference_code))
    *_, info = env.step(env.parser.format_answer(obs[0]["content"].strip()))
    return bool(info["success"])


def episodes_per_second(task_id: str, episodes: int, threads: int) -> tuple[float, int]:
    envs = [toolgym.make(task_id) for _ in range(threads)]
    for env in envs:  # warm the shared pool and the zygote
        scripted_episode(env, 0)

    def worker(k: int) -> int:
        return sum(scripted_episode(envs[k], i) for i in range(k, episodes, threads))

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        solved = sum(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return episodes / elapsed, solved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--task", default="toolgym/arith-v0")
    parser.add_argument("--out", default="benchmarks/results/env_step.json")
    args = parser.parse_args()

    results: dict[str, float | int | str] = {"task": args.task, "steps": args.steps,
                                            "episodes": args.episodes}
    results.update(step_overhead(args.steps))
    rate, solved = episodes_per_second(args.task, args.episodes, threads=1)
    results.update({"episodes_per_s": rate, "solved": solved})
    rate4, solved4 = episodes_per_second(args.task, args.episodes, threads=4)
    results.update({"episodes_per_s_4_threads": rate4, "solved_4_threads": solved4})

    print(f"{'metric':<28} {'value':>12}")
    for key, value in results.items():
        shown = f"{value:12.1f}" if isinstance(value, float) else f"{value!s:>12}"
        print(f"{key:<28} {shown}")
    write_json(results, args.out)


if __name__ == "__main__":
    main()
