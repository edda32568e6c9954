"""Held-out evaluations in the background (`eval.background`): training does not wait for them.

An evaluation due after step s is submitted to the pool's evaluator with the weights synced after s
(a snapshot: the object-store copy of a sync is immutable) and training goes on. Each finished one is
written to RUN_DIR/eval/step_S.json as a foreground one is (its `step` and `policy_version` are s, its
`policy_tokens` the run's at s) and its metrics join the record of the step at which it is collected,
with `eval/policy_version` = s saying which weights they measure. The end of the run waits for the
ones still running (then the final evaluation runs in the foreground); Ctrl-C or a failure drops them
(a checkpoint does not hold them: `toolgym eval` on the step's checkpoint redoes one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolgym.trainers.config.checks import task_ids

if TYPE_CHECKING:
    from toolgym.trainers.run.runstate import RunState


def eval_kwargs(run: RunState) -> dict[str, Any]:
    """The pool's evaluate/submit_eval arguments of the run's eval config."""
    e = run.cfg.eval
    return {"tasks": task_ids(run.cfg, e.split), "split": e.split, "problems": e.problems, "n": e.n,
            "ks": list(e.ks), "temperature": e.temperature, "seed": run.cfg.run.seed}


def record_eval(run: RunState, step: int, policy_tokens: int, result: dict[str, Any]) -> None:
    """RUN_DIR/eval/step_N.json of an evaluation of the weights after `step`."""
    out = run.run_dir / "eval" / f"step_{step:06d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "policy_tokens": policy_tokens, **result}  # result: its policy_version
    out.write_text(json.dumps(record, indent=1, default=str))


@dataclass
class _Pending:
    step: int
    policy_tokens: int
    handle: Any


class BackgroundEvals:
    """The evaluations submitted and not yet collected, oldest first."""

    def __init__(self) -> None:
        self.pending: list[_Pending] = []

    def submit(self, run: RunState) -> None:
        handle = run.pool.submit_eval(**eval_kwargs(run))
        self.pending.append(_Pending(run.step, run.policy_tokens, handle))

    def finished(self, run: RunState, wait: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """(step, result) of the evaluations done (all of them with `wait`), in submission order; each
        is recorded to its file."""
        done: list[tuple[int, dict[str, Any]]] = []
        while self.pending and (wait or run.pool.eval_ready(self.pending[0].handle)):
            item = self.pending.pop(0)
            result = run.pool.collect_eval(item.handle)
            record_eval(run, item.step, item.policy_tokens, result)
            done.append((item.step, result))
        return done
