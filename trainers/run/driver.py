"""The single controller: `fit()` reads like the algorithm; Ray (or one process) decides where it runs.

    probe: the curriculum's success rates, before step 1 (potential, difficulty_band; probe.py)
    for step in 1..S:
        requests = curriculum.next_batch(n)                  task instances, in stage order
        episodes = rollout workers(requests)                 G episodes per request (Ray actors)
        groups   = group filter(episodes)                    zero-variance groups dropped, refilled
        samples  = advantages(groups)                        registry estimator, per token
        learner.update(samples)                              registry loss, AdamW
        sync weights -> rollout engines
        curriculum.update(outcomes)                          success stats, potentials, stages
        every eval.every steps (or eval.every_tokens tokens): held-out pass@k; metrics JSONL; checkpoint
    until run.steps, run.time_limit_s or run.token_budget (generated policy tokens, probe included)

With run.max_staleness K > 0 the rollouts of the next K steps are submitted before the learner update
and generate while it runs (ahead.py); K = 0 is the loop above, exactly.

Ctrl-C finishes the current step, saves a checkpoint and returns (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.report.metrics import (
    Progress,
    episode_metrics,
    no_tool_warning,
    peak_rss_mb,
    unit_potentials,
)
from toolgym.trainers.run.ahead import RolloutsAhead, staleness_metrics, step_seed
from toolgym.trainers.run.background_eval import BackgroundEvals, eval_kwargs, record_eval
from toolgym.trainers.run.deadline import Deadline
from toolgym.trainers.run.deadline import now as deadline_clock
from toolgym.trainers.run.heap import release_free_memory
from toolgym.trainers.run.probe import probe_curriculum
from toolgym.trainers.run.rollout_pool import background_eval, make_pool
from toolgym.trainers.run.runstate import RunState
from toolgym.trainers.run.stages import build_samples, group_episodes, mean_policy_kl, outcomes, reward_kl

if TYPE_CHECKING:
    from toolgym.agents.episode import Episode


def fit(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
        deadline: Deadline | None = None) -> dict[str, Any]:
    """Train for `cfg.run.steps` steps; returns the last step's metrics and the held-out evaluations
    (step -> result) made before training, every `eval.every` steps and after the last step, the
    workers' peak memory and busy seconds (rolling out, evaluating) and the run's wall seconds.
    `deadline`: no step starts unless it and the final evaluation fit before `deadline.at`."""
    run = RunState.create(cfg, run_dir, resume=resume)
    deadline = deadline or Deadline()
    if cfg.eval.problems == 0:
        deadline.measured_eval(0.0)  # no final evaluation to leave room for
    progress = train_progress(run)
    evals: dict[int, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    background = BackgroundEvals() if background_eval(cfg) else None
    try:
        run.pool = make_pool(run.model_path, cfg, version=run.step)
        run.ahead = RolloutsAhead(cfg.run.max_staleness, run.restored_ahead)
        record_isolation(run, say=progress.write)
        start: dict[str, Any] = probe_curriculum(run, say=progress.write) if run.step == 0 else {}
        if start:
            run.policy_tokens += int(start["curriculum/probe_tokens"])
            start["rollout/tokens_total"] = float(run.policy_tokens)
        if run.step == 0 and cfg.eval.problems > 0:  # the starting point, for before/after comparisons
            if background is not None:
                background.submit(run)
            else:
                t_eval = deadline_clock()
                evals[0] = evaluate(run)
                deadline.measured_eval(deadline_clock() - t_eval)  # what the final evaluation will cost
                start.update(eval_metrics(evals[0]))
        if start:
            run.logger.log(0, start)
        progress.start()
        with interrupt_flag() as interrupted:
            while run.step < cfg.run.steps and not interrupted() and not out_of_time(run) \
                    and not out_of_tokens(run) and deadline.leaves_room():
                tokens_before, t_step = run.policy_tokens, deadline_clock()
                metrics = train_step(run)
                deadline.measured_step(deadline_clock() - t_step)
                if eval_due(cfg, run.step, tokens_before, run.policy_tokens) and not last_step(run):
                    if background is not None:
                        background.submit(run)
                    else:
                        evals[run.step] = evaluate(run)
                        metrics.update(eval_metrics(evals[run.step]))
                if background is not None:
                    metrics.update(collected_evals(run, background, evals))
                run.logger.log(run.step, metrics)
                progress.update(metrics)
                if warning := no_tool_warning(run.step, metrics):
                    progress.write(warning)
                if cfg.checkpoint.every > 0 and run.step % cfg.checkpoint.every == 0:
                    run.save()
            if interrupted():
                if background is not None and background.pending:
                    progress.write(f"{len(background.pending)} background evaluation(s) still running "
                                   f"were dropped")
                progress.write(f"interrupted: checkpoint {run.save()} written; resume with --resume")
                return {"interrupted": True, "step": run.step, "metrics": metrics, "evals": evals}
        if background is not None and background.pending:
            run.logger.log(run.step, collected_evals(run, background, evals, wait=True))
        if cfg.eval.problems > 0 and run.step not in evals:
            evals[run.step] = evaluate(run)
            run.logger.log(run.step, eval_metrics(evals[run.step]))
        run.save()
        worker_rss, worker_busy = run.pool.peak_rss_mb(), run.pool.busy_seconds()
    finally:
        progress.close()
        run.close()
    return {"interrupted": False, "step": run.step, "metrics": metrics, "evals": evals,
            "worker_peak_rss_mb": worker_rss, "worker_busy_s": worker_busy,
            "wall_s": time.monotonic() - run.started}


def train_progress(run: RunState) -> Progress:
    """The training bar: over steps, or over generated tokens when `run.token_budget` stops the run
    (the probe's and refills' tokens included, as the budget counts them). `fit` starts it at the
    first step, after the workers, the probe and the starting evaluation."""
    cfg = run.cfg
    if cfg.run.token_budget is None:
        return Progress(cfg.run.steps, initial=run.step, enabled=cfg.run.progress, start=False)
    return Progress(cfg.run.token_budget, initial=run.policy_tokens, enabled=cfg.run.progress,
                    desc="train (tokens)", counter="rollout/tokens_total", start=False)


def train_step(run: RunState) -> dict[str, Any]:
    """One rollout batch and its updates; returns the step's metrics."""
    cfg, started = run.cfg, time.monotonic()
    step = run.step + 1
    all_episodes: list[Episode] = []
    cap = run.curriculum.max_response_length  # the length stage in effect from this step on, or None
    ahead = run.ahead if run.ahead is not None else RolloutsAhead(0)
    waited = []

    def sample_groups(k: int) -> list[list[Episode]]:
        if not all_episodes:  # the step's first batch: submitted ahead (max_staleness > 0) or drawn now
            t_wait = time.monotonic()
            episodes = ahead.take(run, step)
            waited.append(time.monotonic() - t_wait)
        else:  # a refill round: drawn and rolled out now, with the newest weights
            requests = run.curriculum.next_batch(k, run.rng)
            seed = step_seed(cfg.run.seed, step, len(all_episodes))
            episodes = run.pool.rollout(requests, seed=seed, max_response_tokens=cap)
        all_episodes.extend(episodes)
        return group_episodes(episodes)

    kept = run.group_filter.fill(sample_groups, cfg.rollout.prompts_per_step)
    rollout_s = time.monotonic() - started
    staleness = staleness_metrics(all_episodes, run.step, cfg.run.max_staleness)
    run.curriculum.update(outcomes(all_episodes))
    ahead.submit_ahead(run, step)  # the next steps' rollouts run while the learner trains this one
    kl = reward_kl(kept.kept, run.learner.reference_logprobs) if cfg.algo.kl_coef > 0 and kept.kept else None
    samples = build_samples(kept.kept, cfg, kl)
    t_learn = time.monotonic()
    coef = run.entropy.coef_to_apply if run.entropy is not None else None  # adaptive, else the config's
    learned = run.learner.update(samples, entropy_coef=coef) if samples else {}
    if run.entropy is not None and "actor/entropy" in learned:
        run.entropy.update(learned["actor/entropy"])
    t_sync = time.monotonic()
    run.pool.sync(run.learner.policy_state(), version=step, wait=cfg.run.max_staleness == 0)
    release_free_memory()  # an in-process learner's activations: not held while the actors generate
    run.step = step
    step_metrics = episode_metrics(all_episodes, rollout_s)
    run.policy_tokens += int(step_metrics["rollout/tokens"])
    return {
        **step_metrics, **staleness, "rollout/tokens_total": float(run.policy_tokens), **learned,
        **run.curriculum.describe(),
        "curriculum/unit_potentials": unit_potentials(run.curriculum),
        "filter/kept_groups": float(len(kept.kept)), "filter/dropped_groups": float(len(kept.dropped)),
        "learner/samples": float(len(samples)), "actor/entropy_coef": entropy_coef(run),
        **({"algo/reward_kl": mean_policy_kl(kept.kept, kl)} if kl is not None else {}),
        "rollout/max_response_tokens": float(cap or cfg.sampling.max_episode_tokens),
        "time/rollout_s": rollout_s, "time/wait_rollout_s": waited[0] if waited else 0.0,
        "time/learner_s": t_sync - t_learn,
        "time/sync_s": time.monotonic() - t_sync, "time/step_s": time.monotonic() - started,
        "faults/worker_restarts": float(run.pool.restarts),
        "faults/retried_requests": float(run.pool.retried),
        "system/peak_rss_mb": peak_rss_mb(),
    }


def evaluate(run: RunState) -> dict[str, Any]:
    """Held-out pass@k with the current weights; also written to RUN_DIR/eval/step_N.json."""
    result = run.pool.evaluate(**eval_kwargs(run))
    record_eval(run, run.step, run.policy_tokens, result)
    return result


def collected_evals(run: RunState, background: BackgroundEvals, evals: dict[int, dict[str, Any]],
                    wait: bool = False) -> dict[str, float]:
    """Metrics of the background evaluations finished by now (the newest one's, with the step of its
    weights as eval/policy_version); each joins `evals` under its step."""
    out: dict[str, float] = {}
    for step, result in background.finished(run, wait=wait):
        evals[step] = result
        out = {**eval_metrics(result), "eval/policy_version": float(step)}
    return out


def eval_metrics(result: dict[str, Any]) -> dict[str, float]:
    return {f"eval/{k}": float(v) for k, v in result["overall"].items()
            if k.startswith("pass@") and v is not None}


def record_isolation(run: RunState, say: Any = print) -> dict[str, Any]:
    """Print the sandbox isolation the rollout workers obtained and record it in RUN_DIR/sandbox.json
    (so a run says whether model code ran under bubblewrap or, after a fallback, without it)."""
    report = run.pool.sandbox_isolation()
    (run.run_dir / "sandbox.json").write_text(json.dumps(report, indent=1))
    say(report["summary"])
    return report


def eval_due(cfg: TrainConfig, step: int, tokens_before: int, tokens_after: int) -> bool:
    """Whether a held-out eval follows this step: every `eval.every` steps, and after the step in which
    the run's generated policy tokens passed a multiple of `eval.every_tokens`."""
    every, every_tokens = cfg.eval.every, cfg.eval.every_tokens
    by_steps = every > 0 and step % every == 0
    by_tokens = every_tokens > 0 and tokens_after // every_tokens > tokens_before // every_tokens
    return by_steps or by_tokens


def last_step(run: RunState) -> bool:
    """No step follows this one (its eval is the final one, made after the loop)."""
    return run.step >= run.cfg.run.steps or out_of_tokens(run)


def out_of_tokens(run: RunState) -> bool:
    budget = run.cfg.run.token_budget
    return budget is not None and run.policy_tokens >= budget


def out_of_time(run: RunState) -> bool:
    limit = run.cfg.run.time_limit_s
    return limit is not None and time.monotonic() - run.started > limit


def entropy_coef(run: RunState) -> float:
    if run.entropy is not None:
        return float(run.entropy.coef_to_apply)
    return float(run.cfg.loss.entropy_coef)


@contextmanager
def interrupt_flag() -> Iterator[Any]:
    """While active, the first SIGINT sets a flag (checked between steps); the second raises."""
    hits = []

    def handler(signum: int, frame: Any) -> None:
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        yield lambda: False
        return
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, previous)
