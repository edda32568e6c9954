"""Time per RL step: toolgym's trainer vs TRL's GRPOTrainer, side by side in one run, on the tiny model.

Both trainers get the same weights (the tiny model, warm-started here on teacher demonstrations in the
JSON tool-call format so that it actually calls the tool), the same arith prompts, the same group size,
prompts per step, per-turn token budget and learning rate, one optimizer step per rollout batch, no KL,
and rewards from the same environment (the arith verifier). Two tasks:

    single_turn   one assistant turn, no tool (max_turns 1)
    multi_turn    up to `--tool-calls` python calls then an answer; TRL runs its tool-calling mode
                  (`tools=[python]`, `max_tool_calling_iterations`), its python tool executes in the same
                  local sandbox backend our environments use and returns the same text our environment
                  shows (`format_result`)

Like for like in the multi-turn task: TRL renders the tool's JSON schema into the system message with
its Qwen2.5 chat template and parses `<tool_call>` JSON from the reply. So the warm-started model is
saved with that chat template, and our environment's system prompt is set to exactly what TRL renders
(our default system prompt + TRL's tools block): the two sides' prompt token ids are identical (checked
and stored as `prompt_ids_identical`), our JSON tool parser reads TRL's `<tool_call>` format as it is,
and both render the tool output as the template's `<tool_response>` turn. The warm start trains on demos
rendered both ways (plain system prompt and with TRL's tools block) so both tasks see familiar prompts.
The evidence that a row compares like with like: tool calls and policy tokens per episode, printed and
stored for both sides (TRL's `completions/mean_length` counts model tokens only, as ours does).
Remaining differences: our engine stops a turn at `</tool_call>` and appends the end-of-turn token as
prompt, TRL samples it (one policy token per tool turn); our environment adds a one-line notice after the
last allowed call; TRL's tool runs each call in a fresh interpreter, ours in the episode's stateful one.
A malformed turn (neither a parsable tool call nor an answer) ends TRL's episode (its tool loop stops at
the first turn without a tool call); ours is set to do the same (`EnvConfig.end_on_malformed`; by default
our environment replies with format feedback and lets the model try again).

Ours runs the driver's stages in one process (`run.ray: off`, as TRL is one process) with the
zero-variance filter off, so every step does a learner update as TRL's does. The first `--warmup`
steps of each are not timed. Reported: mean seconds per step, ratios ours / TRL (`ratio_single_turn`,
`ratio_multi_turn`: < 1 means ours is faster; from the fastest timed step of each, as the machine is
shared and other jobs slow random steps; `ratio_*_mean` from the means), the share of our step time
in generation / sandbox / learner / sync (from our metrics.jsonl), and tokens and tool calls per
episode on both sides. TRL is a benchmark-only dependency: `pip install -e ".[bench]"`.

    python benchmarks/train_step.py [--steps 4] [--out benchmarks/results/train_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TASK = "toolgym/arith-v0"
# The quickstart recipe's tiny model (trainers/config/recipes/quickstart.yaml, model.tiny)
QUICKSTART_MODEL = {"hidden_size": 128, "intermediate_size": 256, "num_layers": 4, "num_heads": 4,
                    "num_kv_heads": 4}
MODES = {"single_turn": {"max_turns": 1, "max_tool_calls": 0},
         "multi_turn": {"max_turns": 3, "max_tool_calls": 2}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per trainer and task")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--group", type=int, default=4, help="samples per prompt (GRPO group)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="token budget per assistant turn")
    p.add_argument("--tool-calls", type=int, default=2, help="multi_turn: max tool calls per episode")
    p.add_argument("--temperature", type=float, default=0.6,
                   help="sampling temperature of both trainers (the short warm start keeps the tiny model's "
                        "JSON tool calls well formed at 0.6, rarely at 1.0)")
    p.add_argument("--sft-steps", type=int, default=600, help="warm-start steps on teacher demos")
    p.add_argument("--model", default=None, help="reuse a warm-started model directory (skips the SFT)")
    p.add_argument("--modes", default="single_turn,multi_turn")
    p.add_argument("--out", default="benchmarks/results/train_step.json")
    return p.parse_args(argv)


def warm_start(out_dir: Path, steps: int, seed: int = 0) -> str:
    """The tiny model after a short SFT on JSON-format teacher demos, saved to out_dir/sft with TRL's
    Qwen2.5 chat template; the demos are rendered under both system prompts the benchmark uses (ours,
    and ours + TRL's tools block), half each."""
    import torch
    from toolgym.agents.policies import TeacherAgent
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.agents.tiny import build_tiny_model
    from toolgym.envs.types import TaskRequest
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.chat_template_utils import qwen2_5_chat_template

    base = build_tiny_model(out_dir / "base", seed=seed, **QUICKSTART_MODEL)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = qwen2_5_chat_template  # renders system/user/assistant as the tiny template does
    model = AutoModelForCausalLM.from_pretrained(base)
    demos = []
    for system in ({}, {"system_prompt": multi_turn_system_prompt(tok)}):
        runner = RolloutRunner(TeacherAgent(tok), tok, env_kwargs={
            "tool_format": "json", "max_turns": 3, "max_tool_calls": 2, **system})
        demos += [e for e in runner.run([TaskRequest(TASK, i, "train") for i in range(256)]) if e.success]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # the quickstart SFT settings (README "Quickstart")
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 100))
    gen = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        batch = [demos[int(i)] for i in torch.randint(len(demos), (16,), generator=gen)]
        loss = _nll(model, batch, tok.eos_token_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
        warmup.step()
        if step % 50 == 0:
            print(f"warm start: step {step}/{steps}, loss {loss.item():.3f}", flush=True)
    model.save_pretrained(out_dir / "sft")
    tok.save_pretrained(out_dir / "sft")
    print(f"warm start: {len(demos)} teacher demos, {steps} steps, last loss {loss.item():.3f}", flush=True)
    return str(out_dir / "sft")


def python_tool(backend: Any = None) -> Any:
    """TRL's python tool: runs the code in a fresh session of `backend` (our local sandbox) and returns
    the text our environment shows for the same result. Its name, signature and docstring are the JSON
    schema TRL renders into the prompt."""
    from toolgym.envs.config import EnvConfig
    from toolgym.envs.feedback import format_result

    config = EnvConfig()

    def python(code: str) -> str:
        """Run Python code in a fresh interpreter and return what it prints.

        Args:
            code: the Python source to run
        """
        session = backend.new_session()
        try:
            return format_result(session.run(code, timeout=config.call_timeout), config, config.call_timeout)
        finally:
            session.close()

    return python


def multi_turn_system_prompt(tok: Any) -> str:
    """Our environment's system prompt template that renders exactly as TRL's prompt does: our default
    prompt followed by the tools block TRL's Qwen2.5 template appends to the system message."""
    from toolgym.envs.feedback import DEFAULT_SYSTEM_PROMPT
    from trl.chat_template_utils import qwen2_5_chat_template

    mark = "\x00SYSTEM\x00"
    text = tok.apply_chat_template([{"role": "system", "content": mark}, {"role": "user", "content": "u"}],
                                   tools=[python_tool()], chat_template=qwen2_5_chat_template, tokenize=False)
    block = text.split(mark, 1)[1].split("<|im_end|>", 1)[0]
    if "<tools>" not in block or "{instructions}" in block:
        raise RuntimeError(f"unexpected TRL tools block in the system message: {block[:200]!r}")
    return DEFAULT_SYSTEM_PROMPT + block


def same_prompt_ids(model: str, mode: str, a: argparse.Namespace, n: int = 8) -> bool:
    """Whether our prompt ids equal TRL's for the first `n` instances of `mode`."""
    import toolgym.envs as E
    from toolgym.agents.chat import ChatRenderer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    multi = mode == "multi_turn"
    limits = {"tool_format": "json", **(MODES[mode] if not multi else
                                        {"max_turns": 3, "max_tool_calls": a.tool_calls})}
    ours_env = E.make(TASK, split="train", **limits,
                      **({"system_prompt": multi_turn_system_prompt(tok)} if multi else {}))
    trl_env = E.make(TASK, split="train", **limits)
    renderer = ChatRenderer(tok)
    for i in range(n):
        ours = renderer.prompt_ids(ours_env.reset(options={"index": i})[0])
        trl = tok.apply_chat_template(trl_env.reset(options={"index": i})[0], add_generation_prompt=True,
                                      tools=[python_tool()] if multi else None, tokenize=True,
                                      return_dict=False)
        if ours != list(trl):
            return False
    return True


def like_for_like(ours: dict[str, Any], trl: dict[str, Any], same_prompts: bool, tol: float = 0.2) -> bool:
    """Same prompt ids, and tool calls and policy tokens per episode within `tol` (relative; tool calls
    also within 0.1 absolute) on both sides: then the two step times measure the same work."""
    def close(key: str, floor: float) -> bool:
        x, y = ours[key], trl[key]
        return abs(x - y) <= max(tol * max(abs(x), abs(y)), floor)

    return same_prompts and close("tool_calls_per_episode", 0.1) and close("policy_tokens_per_episode", 0.0)


def _nll(model: Any, episodes: list[Any], eos_id: int) -> Any:
    """Token-mean NLL of a padded batch of demos on the policy tokens (loss mask 1) plus the end-of-turn
    token after each policy turn: our engine ends a turn at the parser's stop string, TRL ends it at
    EOS, so the warm-started model must emit both to behave alike under the two trainers."""
    import torch

    rows = [e.prompt_ids + e.response_ids + [eos_id] for e in episodes]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)  # [B, L]
    mask = torch.zeros((len(rows), width))  # [B, L] 1 on trained targets
    for i, e in enumerate(episodes):
        ids[i, : len(rows[i])] = torch.tensor(rows[i])
        turn = [*e.loss_mask, 0]
        eos_after_turn = [int(t == eos_id and m == 0 and turn[j - 1] == 1) if j else 0
                          for j, (t, m) in enumerate(zip(rows[i][len(e.prompt_ids):], turn, strict=True))]
        eos_after_turn[-1] = 1  # the final EOS after the answer
        mask[i, len(e.prompt_ids): len(rows[i])] = torch.tensor(
            [max(m, x) for m, x in zip(turn, eos_after_turn, strict=True)], dtype=torch.float32)
    logp = torch.log_softmax(model(ids).logits[:, :-1].float(), -1)  # [B, L-1, V]
    tok_logp = logp.gather(-1, ids[:, 1:, None])[..., 0]  # [B, L-1]
    return -(tok_logp * mask[:, 1:]).sum() / mask[:, 1:].sum().clamp_min(1)


def run_ours(model: str, mode: str, a: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    from toolgym.trainers.config.recipes import load_recipe
    from toolgym.trainers.run.driver import fit

    limits = MODES[mode] if mode == "single_turn" else {**MODES[mode], "max_tool_calls": a.tool_calls}
    cfg = load_recipe("quickstart", overrides=[
        f"model.name_or_path={model}", f"rollout.prompts_per_step={a.prompts}",
        f"rollout.group_size={a.group}",
        f"rollout.max_turns={limits['max_turns']}", f"rollout.max_tool_calls={limits['max_tool_calls']}",
        "rollout.tool_format=json", "rollout.env={}", "rollout.num_workers=1",  # TRL's prompts, one process
        "rollout.filter_zero_variance=false", "curriculum.scheduler=uniform",
        "curriculum.options={}", f"sampling.max_new_tokens={a.max_new_tokens}",
        f"sampling.temperature={a.temperature}", "optimizer.lr=1e-5",
        "optimizer.micro_batch_tokens=65536",  # the whole batch in one forward/backward, as TRL does
        "eval.problems=0", f"run.steps={a.warmup + a.steps}", "run.ray=off", "run.progress=false"])
    if mode == "multi_turn":  # TRL's prompt (~500 tiny-model tokens); the per-turn cap binds, not 2048
        from transformers import AutoTokenizer

        cfg.rollout.env = {"system_prompt": multi_turn_system_prompt(AutoTokenizer.from_pretrained(model)),
                           "end_on_malformed": True}  # as TRL's tool loop
        cfg.sampling.max_episode_tokens = 2048
    fit(cfg, run_dir)
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in recs if "time/step_s" in r and r["step"] > a.warmup]
    step_s = statistics.mean(r["time/step_s"] for r in timed)
    parts = {"generation": "time/generation_s", "sandbox": "time/sandbox_s", "learner": "time/learner_s",
             "sync": "time/sync_s"}
    shares = {f"share_{k}": statistics.mean(r[v] for r in timed) / step_s for k, v in parts.items()}
    return {"step_s": step_s, "steps_s": [r["time/step_s"] for r in timed], **shares,
            "policy_tokens_per_episode": statistics.mean(r["rollout/tokens"] / r["rollout/episodes"]
                                                         for r in timed),
            "tool_calls_per_episode": statistics.mean(r["tool/calls"] for r in timed)}


# ---- the TRL side --------------------------------------------------------------------------------------

def _env_reward(mode: str, a: argparse.Namespace) -> Any:
    """TRL reward function: our environment's reward for the episode's final assistant text."""
    import toolgym.envs as E

    env = E.make(TASK, split="train", tool_format="json", max_turns=1, max_tool_calls=0)

    def reward(prompts: list[Any], completions: list[Any], index: list[int], **_: Any) -> list[float]:
        out = []
        for c, i in zip(completions, index, strict=True):
            text = c[-1]["content"] if isinstance(c, list) else str(c)
            env.reset(options={"index": int(i)})
            out.append(float(env.step(text)[1]))
        return out

    return reward


def _require_qwen_template(tok: Any, model: str) -> None:
    from trl.chat_template_utils import qwen2_5_chat_template

    if tok.chat_template != qwen2_5_chat_template:
        raise SystemExit(f"--model {model}: its tokenizer does not carry TRL's Qwen2.5 chat template, so "
                         "the two sides would not see the same prompts; warm-start it with this script (omit "
                         "--model) and reuse the printed directory.")


def run_trl(model: str, mode: str, a: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import toolgym.envs as E
    from datasets import Dataset
    from toolgym.envs.sandbox import make_sandbox
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    multi = mode == "multi_turn"
    env = E.make(TASK, split="train", tool_format="json", **(MODES[mode] if not multi else
                 {"max_turns": 3, "max_tool_calls": a.tool_calls}))
    rows = [{"prompt": env.reset(options={"index": i})[0], "index": i} for i in range(512)]
    tok = AutoTokenizer.from_pretrained(model)
    _require_qwen_template(tok, model)  # TRL parses tool calls for known templates only (<tool_call>)
    times: list[float] = []
    stats: list[dict[str, float]] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.perf_counter() - self.started)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "completions/mean_length" in logs:
                stats.append({"len": float(logs["completions/mean_length"]),
                              "calls": float(logs.get("tools/call_frequency", 0.0))})

    backend = make_sandbox("local") if multi else None
    budget = a.max_new_tokens * (a.tool_calls + 1) if multi else a.max_new_tokens  # all turns together
    cfg = GRPOConfig(output_dir=str(out_dir), per_device_train_batch_size=a.prompts * a.group,
                     num_generations=a.group, max_completion_length=budget,
                     max_steps=a.warmup + a.steps, learning_rate=1e-5, beta=0.0, temperature=a.temperature,
                     logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
                     max_tool_calling_iterations=a.tool_calls if multi else None, seed=0,
                     generation_kwargs={"max_new_tokens": a.max_new_tokens} if multi else None)  # per turn
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=cfg,
                          reward_funcs=_env_reward(mode, a), train_dataset=Dataset.from_list(rows),
                          processing_class=tok, tools=[python_tool(backend)] if multi else None,
                          callbacks=[Timer()])
    trainer.train()
    if backend is not None:
        backend.close()
    timed = times[a.warmup:]
    return {"step_s": statistics.mean(timed), "steps_s": timed,
            # TRL's completions/mean_length counts model tokens only (tool_mask 1), as our rollout/tokens
            "policy_tokens_per_episode": statistics.mean(s["len"] for s in stats[a.warmup:]),
            "tool_calls_per_episode": statistics.mean(s["calls"] for s in stats[a.warmup:])}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="train_step_"))
    model = a.model or warm_start(work, a.sft_steps)
    results: dict[str, Any] = {}
    for mode in a.modes.split(","):
        ours = run_ours(model, mode, a, work / f"ours_{mode}")
        print(f"{mode}: ours {ours['step_s']:.2f} s/step", flush=True)
        trl = run_trl(model, mode, a, work / f"trl_{mode}")
        print(f"{mode}: TRL  {trl['step_s']:.2f} s/step", flush=True)
        same = same_prompt_ids(model, mode, a)
        results[mode] = {"ours": ours, "trl": trl, "prompt_ids_identical": same,
                         "like_for_like": like_for_like(ours, trl, same)}
        # the box is shared (other jobs steal CPU at random): the fastest step of each is the least
        # disturbed estimate of what the code costs; the mean-based ratio is kept beside it
        results[f"ratio_{mode}"] = min(ours["steps_s"]) / min(trl["steps_s"])
        results[f"ratio_{mode}_mean"] = ours["step_s"] / trl["step_s"]
    multi = results.get("multi_turn", results.get("single_turn"))["ours"]
    for part in ("generation", "sandbox", "learner", "sync"):
        results[f"share_{part}"] = multi[f"share_{part}"]
    import torch
    import trl

    machine = f"{platform.machine()} {os.cpu_count()} cpus (shared), {platform.platform()}"
    results["setup"] = {"machine": machine, "torch": torch.__version__, "trl": trl.__version__,
                        "threads": torch.get_num_threads(), "command": " ".join(["python", *sys.argv]),
                        **vars(a)}
    print_table(results)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    return 0


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'task':<12} {'ours s/step min/mean':>20} {'TRL s/step min/mean':>20} {'ratio':>6} "
          f"{'tok/ep ours/TRL':>16} {'tools/ep ours/TRL':>18} {'same prompt ids':>15} {'like for like':>13}")
    for mode in MODES:
        if mode not in results:
            continue
        o, t = results[mode]["ours"], results[mode]["trl"]
        ours_s = f"{min(o['steps_s']):.2f}/{o['step_s']:.2f}"
        trl_s = f"{min(t['steps_s']):.2f}/{t['step_s']:.2f}"
        print(f"{mode:<12} {ours_s:>20} {trl_s:>20} {results[f'ratio_{mode}']:>6.2f} "
              f"{o['policy_tokens_per_episode']:>7.1f}/{t['policy_tokens_per_episode']:<8.1f} "
              f"{o['tool_calls_per_episode']:>8.2f}/{t['tool_calls_per_episode']:<9.2f} "
              f"{results[mode]['prompt_ids_identical']!s:>15} {results[mode]['like_for_like']!s:>13}")
    print("our step-time shares (multi_turn): " + ", ".join(
        f"{p} {results[f'share_{p}']:.0%}" for p in ("generation", "sandbox", "learner", "sync")))


if __name__ == "__main__":
    raise SystemExit(main())
