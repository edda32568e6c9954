"""Held-out evaluation: unbiased pass@k per task and overall, with the episode statistics around it.

Why the combinatorial estimator: with n samples per problem of which c are correct, the naive
"any of the first k correct" is a high-variance estimate that depends on sample order. The unbiased
estimator (Chen et al. 2021, Codex) averages over all k-subsets of the n samples:

    pass@k = 1 - C(n - c, k) / C(n, k)    computed as 1 - prod_{i=n-c+1..n} (1 - k / i)

averaged over problems. Overall figures are micro-averages over all problems of all tasks (each
problem counts once); per-task figures average that task's problems. "Correct" is the verifier's
perfect score (`Episode.success`), never the shaped reward.

`evaluate` takes a policy directly (an Engine + tokenizer, a chat engine, or an Agent), so the
trainer's periodic held-out evaluation and `toolgym eval` run the same code.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from toolgym.agents.engine import SamplingParams
from toolgym.agents.episode import Episode, tool_use_health, write_jsonl
from toolgym.agents.rollout import RolloutRunner
from toolgym.envs import registry
from toolgym.envs.sandbox import describe_isolation
from toolgym.envs.sessions import default_pool
from toolgym.envs.types import TaskRequest


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `c` correct out of `n` samples (requires k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def resolve_tasks(tasks: str | Sequence[str], split: str) -> list[str]:
    """A suite name, one task id, or a list of task ids -> task ids (errors name the known ones)."""
    if isinstance(tasks, str):
        if tasks in registry.list_suites():
            return list(registry.suite_tasks(tasks, split))
        tasks = [tasks]
    ids = [registry.task_spec(t).id for t in tasks]
    for task_id in ids:
        splits = registry.task_splits(task_id)
        if split not in splits:
            raise ValueError(f"task {task_id!r} has no split {split!r}; its splits: {', '.join(splits)}")
    return ids


INFRASTRUCTURE = "engine: "  # the rollout's prefix for an engine failure (endpoint down, server error)


def is_infrastructure_error(error: str | None) -> bool:
    """An episode error that says nothing about the model: the engine (or endpoint) failed."""
    return bool(error) and INFRASTRUCTURE in error


def first_errors(episodes: Iterable[Episode], limit: int = 5) -> list[dict[str, Any]]:
    """The first `limit` distinct episode error texts, each with where it happened and how often."""
    seen: dict[str, dict[str, Any]] = {}
    for ep in episodes:
        if ep.finish_reason != "error":
            continue
        text = ep.error or "failed (no error text)"
        if text in seen:
            seen[text]["count"] += 1
        elif len(seen) < limit:
            seen[text] = {"task_id": ep.task_id, "index": ep.index, "error": text, "count": 1,
                          "infrastructure": is_infrastructure_error(text)}
    return list(seen.values())


def summarize(episodes: Iterable[Episode], ks: Sequence[int] = (1,)) -> dict[str, Any]:
    """pass@k and episode statistics of a set of episodes (grouped into problems by task/split/index)."""
    episodes = list(episodes)
    problems: dict[tuple[str, str, int], list[Episode]] = defaultdict(list)
    for ep in episodes:
        problems[(ep.task_id, ep.split, ep.index)].append(ep)
    out: dict[str, Any] = {"problems": len(problems), "episodes": len(episodes)}
    for k in ks:
        scores = [pass_at_k(len(g), sum(e.success for e in g), k) for g in problems.values() if len(g) >= k]
        out[f"pass@{k}"] = sum(scores) / len(scores) if scores else None
        out[f"pass@{k}_stderr"] = standard_error(scores)
    count = max(1, len(episodes))
    calls = sum(e.tool_calls for e in episodes)
    out.update({
        "success_rate": sum(e.success for e in episodes) / count,
        "mean_reward": sum(e.reward for e in episodes) / count,
        "mean_score": sum(e.score for e in episodes) / count,
        "avg_turns": sum(e.turns for e in episodes) / count,
        "avg_tool_calls": calls / count,
        "tool_error_rate": sum(e.tool_errors for e in episodes) / calls if calls else 0.0,
        "finish_reasons": dict(Counter(e.finish_reason for e in episodes)),
        "errors": sum(e.finish_reason == "error" for e in episodes),
        "infrastructure_errors": sum(e.finish_reason == "error" and is_infrastructure_error(e.error)
                                     for e in episodes),
        **tool_use_health(episodes),
    })
    return out


def standard_error(values: Sequence[float]) -> float | None:
    """Standard error of the mean over problems (sample std / sqrt(n)); None below 2 problems."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return (sum((v - mean) ** 2 for v in values) / (n - 1) / n) ** 0.5


def evaluate(policy: Any, tokenizer: Any = None, tasks: str | Sequence[str] = "quickstart", *,
             split: str = "heldout", n: int = 8, ks: Sequence[int] = (1, 4, 8), num_problems: int = 20,
             sampling: SamplingParams | None = None, env_kwargs: dict[str, Any] | None = None,
             sandbox: Any = None, progress: bool = True, max_inflight: int | None = None,
             keep_episodes: bool = False,
             task_kwargs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Roll out `n` samples of the first `num_problems` instances of each task's `split`; return
    {"config", "overall", "per_task", "errors"} (and "episodes" when `keep_episodes`); "errors" lists
    the first distinct episode error texts (an errored episode is data, but never silently a 0.0).
    `max_inflight`: episodes alive at once (None: the runner's default for this engine, rollout.py).
    `sandbox`: a backend or pool for the episodes (None: the process-wide default pool); the isolation
    it obtained is recorded in config["sandbox"].
    `task_kwargs`: task id -> extra `make` kwargs for that task only (family options, e.g.
    {"toolgym/code-v0": {"reward": "hard"}})."""
    task_ids = resolve_tasks(tasks, split)
    ks = sorted({k for k in ks if 1 <= k <= n}) or [1]
    options = task_kwargs or {}
    requests = [TaskRequest(t, i, split) for t in task_ids
                for i in range(_count(t, split, num_problems, options.get(t, {})))]
    sandbox = default_pool() if sandbox is None else sandbox
    bar = _progress(len(requests) * n, progress)
    runner = RolloutRunner(policy, tokenizer, group_size=n, sampling=sampling, env_kwargs=env_kwargs,
                           sandbox=sandbox, max_inflight=max_inflight, on_episode=bar.update_episode,
                           task_kwargs=task_kwargs, keep_messages=keep_episodes)
    try:
        episodes = runner.run(requests)
    finally:
        runner.close()
        bar.close()
    by_task: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_task[ep.task_id].append(ep)
    result: dict[str, Any] = {
        "config": {"tasks": task_ids, "split": split, "n": n, "ks": ks, "num_problems": num_problems,
                   "sampling": asdict(sampling or SamplingParams()),
                   "sandbox": sandbox_isolation(sandbox)},
        "overall": summarize(episodes, ks),
        "per_task": {t: summarize(by_task[t], ks) for t in task_ids},
        "errors": first_errors(episodes),
    }
    if keep_episodes:
        result["episodes"] = episodes
    return result


def sandbox_isolation(sandbox: Any) -> dict[str, Any]:
    """The isolation a backend or pool obtained (`IsolationReport.to_dict()`), for results to record."""
    return describe_isolation(getattr(sandbox, "backend", sandbox)).to_dict()


def _count(task_id: str, split: str, wanted: int, family_kwargs: dict[str, Any]) -> int:
    """`wanted`, capped by the split's size for a finite family (built with the run's options for the
    task: a JSONL family's size is its `path`'s, not the default file's)."""
    family = registry.make_family(task_id, **family_kwargs)
    sized = getattr(family, "num_problems", None)
    available = sized(split) if callable(sized) else None
    return min(wanted, int(available)) if available else wanted


def markdown_table(result: dict[str, Any]) -> str:
    """The results as a markdown table: one row per task, then the overall row."""
    ks = result["config"]["ks"]
    head = ["task", "problems", *[f"pass@{k}" for k in ks], "mean reward", "avg turns", "avg tool calls",
            "tool error rate", "finish reasons"]
    rows = [*result["per_task"].items(), ("**overall**", result["overall"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows:
        cells = [name, str(s["problems"]), *[_fmt(s[f"pass@{k}"]) for k in ks], _fmt(s["mean_reward"]),
                 _fmt(s["avg_turns"], 2), _fmt(s["avg_tool_calls"], 2), _fmt(s["tool_error_rate"]),
                 ", ".join(f"{r}: {c}" for r, c in sorted(s["finish_reasons"].items()))]
        lines.append("| " + " | ".join(cells) + " |")
    errors = result.get("errors") or []
    if errors:
        lines += ["", f"**{result['overall'].get('errors', len(errors))} episode(s) failed** (finish reason "
                  "`error`, scored 0); first errors:"]
        lines += [f"- {e['task_id']} #{e['index']} (x{e['count']}): {e['error']}" for e in errors]
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out_dir: str | Path, *,
                 token_level: bool = True) -> tuple[Path, Path]:
    """Write `results.json` and `results.md` into `out_dir`; return their paths. With the episodes in
    `result` (keep_episodes): `transcripts.jsonl` (what was said, run and scored, one episode per line)
    and, when `token_level`, `episodes.jsonl` (whole Episodes with token ids, `read_jsonl`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    serialisable = {k: v for k, v in result.items() if k != "episodes"}
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(serialisable, indent=2) + "\n")
    md_path.write_text(markdown_table(result))
    if "episodes" in result:
        with open(out / "transcripts.jsonl", "w", encoding="utf-8") as handle:
            for ep in result["episodes"]:
                handle.write(json.dumps(transcript(ep), ensure_ascii=False) + "\n")
        if token_level:
            write_jsonl(result["episodes"], out / "episodes.jsonl")
    return json_path, md_path


def transcript(ep: Episode) -> dict[str, Any]:
    """An episode as a reader wants it: the conversation (model turns, tool outputs as the model saw
    them), how it ended and how it scored."""
    keys = ("task_id", "split", "index", "sample", "finish_reason", "score", "success", "reward", "turns",
            "tool_calls", "tool_errors", "format_errors", "error")
    return {**{k: getattr(ep, k) for k in keys}, "messages": ep.messages or []}


def format_transcript(ep: Episode, width: int = 2000) -> str:
    """A transcript as text for the terminal (each message cut to `width` characters)."""
    head = (f"=== {ep.task_id} {ep.split} #{ep.index} sample {ep.sample}: {ep.finish_reason}, score "
            f"{ep.score:.2f}, reward {ep.reward:.2f}, {ep.tool_calls} tool call(s), {ep.format_errors} "
            "malformed turn(s)")
    body = []
    for m in ep.messages or []:
        text = str(m.get("content", ""))
        body.append(f"--- {m.get('role', '?')}\n{text[:width]}" + (" [...]" if len(text) > width else ""))
    return "\n".join([head, *body, *([f"error: {ep.error}"] if ep.error else [])])


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class _Bar:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="eval", unit="ep")
        self.solved = 0

    def update_episode(self, ep: Episode) -> None:
        if self.bar is not None:
            self.solved += int(ep.success)
            self.bar.update(1)
            self.bar.set_postfix(solved=self.solved)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(total: int, enabled: bool) -> _Bar:
    return _Bar(total, enabled)
