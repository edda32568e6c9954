"""The warm start (SFT cold start) before RL, for any model: demos, SFT, the warm model.

    demos  = sft.data (Episode JSONL made with this model's tokenizer), else teacher episodes on train
             instances 0..sft.demos-1 of every training task: the reference program through the tool,
             then its output as the answer -- the same rollout code as RL, the model's own chat
             template, RL's loss masks; + tool-free wrong guesses (quickstart.guess_fraction)
    warm   = SFT(base, demos) for sft.steps [then SFT(warm, demos + guesses) for quickstart.guess_steps]
    RUN_DIR/demos.jsonl, sft_metrics.jsonl, warm_model/, warm_start.json (written last: the stage is done)

R1-Code-Interpreter and Klear cold-start with SFT on multi-turn tool-use trajectories before RL; this
is that stage, run by `toolgym train` whenever `sft.steps > 0` (`--skip-sft` skips it). It resumes: a
finished stage is kept (warm_start.json), demos written whole are reused.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

from toolgym.agents.policies import TeacherAgent, TurnState
from toolgym.trainers.config.schema import TrainConfig
from toolgym.trainers.config.yaml_io import ConfigError
from toolgym.trainers.report.metrics import MetricsLogger, Progress

WARM_DONE = "warm_start.json"  # written when the warm start finished: its figures; a resume skips it


def _guess_answer(answer: Any, rng: random.Random) -> str:
    """A plausible wrong answer: the true integer with every digit after the first redrawn."""
    text = str(int(answer))
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    guess = digits[0] + "".join(rng.choice("0123456789") for _ in digits[1:])
    if guess == digits:  # never right by chance: the demo must score 0
        guess = guess[:-1] + str((int(guess[-1]) + 1) % 10)
    return sign + guess


class GuessingTeacher(TeacherAgent):
    """The teacher, except on the problems in `guess`: there it answers at once, without the tool,
    with a wrong number of the right size (what a model that skips the interpreter produces)."""

    def __init__(self, tokenizer: Any, guess: set[tuple[str, int]], seed: int = 0) -> None:
        super().__init__(tokenizer)
        self.guess = guess
        self.seed = seed

    def turn(self, state: TurnState) -> str:
        if (state.task_id, state.problem.index) not in self.guess:
            return super().turn(state)
        rng = random.Random(f"{self.seed}/{state.task_id}/{state.problem.index}")
        return state.parser.format_answer(_guess_answer(state.problem.answer, rng))


def make_demos(model_path: str, cfg: TrainConfig, count: int, start: int = 0,
               guess_fraction: float = 0.0) -> list[Any]:
    """Warm-start episodes on train instances start..start+count-1 of every training task.

    The last `guess_fraction` share of the instances of each task gets a tool-free guessing episode,
    kept although it fails; the first ones get the teacher's solved episodes (reference program
    through the tool, then its output as the answer), so the RL curriculum's instances 0..k-1 are
    ones the warm start showed solved with the tool. Every demo is a real
    Episode made by the rollout code, scored by the environment.
    """
    from toolgym.agents.rollout import RolloutRunner
    from toolgym.envs.types import TaskRequest
    from toolgym.trainers.config.checks import task_ids, task_kwargs
    from toolgym.trainers.run.workers import env_kwargs
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    requests, guess = [], set()
    first_guess = start + count - round(guess_fraction * count)
    for task in task_ids(cfg):
        requests += [TaskRequest(task, i, "train") for i in range(start, start + count)]
        guess |= {(task, i) for i in range(first_guess, start + count)}
    episodes = []
    teacher = GuessingTeacher(tokenizer, guess, seed=cfg.run.seed)
    with RolloutRunner(teacher, tokenizer, env_kwargs=env_kwargs(cfg), task_kwargs=task_kwargs(cfg),
                       max_inflight=32) as runner:
        for k in range(0, len(requests), 128):
            episodes += runner.run(requests[k:k + 128])
    solved = [e for e in episodes if e.success and (e.task_id, e.index) not in guess]
    if not solved:
        raise RuntimeError("the teacher solved none of the demo instances; first error: "
                           f"{next((e.error for e in episodes if e.error), 'none')}")
    guesses = [e for e in episodes if (e.task_id, e.index) in guess and e.error is None]
    return solved + guesses


def warn_long_turns(demos: list[Any], max_new_tokens: int) -> int:
    """Warn when demo turns are longer than RL may sample (SFT would learn turns RL truncates);
    returns how many demos have such a turn."""
    from toolgym.agents.episode import longest_turn

    lengths = [longest_turn(e) for e in demos]
    long = sum(n > max_new_tokens for n in lengths)
    if long:
        warnings.warn(f"{long} of {len(demos)} warm-start demos have an assistant turn longer than "
                      f"sampling.max_new_tokens={max_new_tokens} (longest: {max(lengths)} tokens): the warm "
                      "start learns turns that RL and the held-out eval cut off. Raise "
                      f"sampling.max_new_tokens to at least {max(lengths)} or shorten the family's "
                      "reference turns.",
                      UserWarning, stacklevel=2)
    return long


def sft_phases(cfg: TrainConfig, demos: list[Any]) -> list[tuple[list[Any], Any]]:
    """(episodes, SFTConfig) per SFT phase. Teacher demos: the solved ones (with the tool, or answering
    directly where a task's reference is the answer itself, as code tasks' are); the quickstart's
    guesses always score 0, so success tells them apart, and a second phase at the floor of the first
    one's cosine trains on the whole mix. `sft.data`: what `sft.only_success` keeps, one phase."""
    if cfg.sft.data:
        return [(demos, cfg.sft)]
    tool_demos = [e for e in demos if e.success]
    phases = [(tool_demos, dataclasses.replace(cfg.sft, only_success=False))]
    if len(tool_demos) < len(demos) and cfg.quickstart.guess_steps:
        phases.append((demos, dataclasses.replace(cfg.sft, steps=cfg.quickstart.guess_steps,
                                                  lr=0.1 * cfg.sft.lr, warmup_steps=0, only_success=False)))
    return phases


def load_sft_data(path: str, vocab_size: int) -> list[Any]:
    """The Episode JSONL of `sft.data`, checked against the model's vocabulary (its token ids must come
    from this model's tokenizer: make it with `toolgym demos --model M` or your own rollouts of M)."""
    from toolgym.agents.episode import read_jsonl

    if not Path(path).exists():
        raise FileNotFoundError(f"sft.data: {path} does not exist (make demos with `toolgym demos OUT.jsonl "
                                "--model M`, or set sft.data: null to generate teacher demos)")
    episodes = list(read_jsonl(path))
    biggest = max((max(e.prompt_ids + e.response_ids, default=0) for e in episodes), default=0)
    if biggest >= vocab_size:
        raise ConfigError(f"sft.data: {path} holds token id {biggest}, outside this model's vocabulary of "
                         f"{vocab_size}: its episodes were tokenized for another model. Regenerate them "
                         "with this model's tokenizer (`toolgym demos OUT.jsonl --model M`)")
    return episodes


def warm_start(cfg: TrainConfig, run_dir: Path, progress: bool) -> tuple[str, dict[str, Any]]:
    """The base model (model.name_or_path, or the tiny model built into RUN_DIR), its demos, SFT;
    returns the warm model dir and the stage's figures.

    Two phases when some demos are the quickstart's guesses: `sft.steps` on the tool demos only (the
    copying skill needs all the steps it can get), then `quickstart.guess_steps` on the whole mix,
    which teaches the habit of guessing without undoing the skill.
    """
    from toolgym.agents.episode import read_jsonl, write_jsonl
    from toolgym.trainers.run.learner_group import load_trainable
    from toolgym.trainers.run.runstate import base_model_path, resolve_device, seed_everything
    from toolgym.trainers.run.sft import mean_nll, run_sft
    from transformers import AutoTokenizer

    warm, done = run_dir / "warm_model", run_dir / WARM_DONE
    if done.exists() and (warm / "config.json").exists():  # resumed after the warm start: keep it
        return str(warm), json.loads(done.read_text())
    seed_everything(cfg.run.seed)
    base = base_model_path(cfg, run_dir)
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(base)
    demos_path = run_dir / "demos.jsonl"
    if cfg.sft.data:  # the user's trajectories
        demos = load_sft_data(cfg.sft.data, len(tokenizer))
    elif demos_path.exists():  # written whole (renamed into place): a resumed warm start reuses them
        demos = list(read_jsonl(demos_path))
    else:
        demos = make_demos(base, cfg, cfg.sft.demos, guess_fraction=cfg.quickstart.guess_fraction)
        write_jsonl(demos, run_dir / "demos.jsonl.tmp")
        (run_dir / "demos.jsonl.tmp").rename(demos_path)
    demo_s = time.monotonic() - started
    warn_long_turns(demos, cfg.sampling.max_new_tokens)
    (run_dir / "sft_metrics.jsonl").unlink(missing_ok=True)  # SFT (re)starts from its first step
    model = load_trainable(cfg, base)
    model.to(resolve_device(cfg))
    phases = sft_phases(cfg, demos)
    bar = Progress(sum(p.steps for _, p in phases), enabled=progress, desc="warm start (sft)",
                   fields=(("nll", "loss/nll", ".3f"),))
    with MetricsLogger(run_dir, "sft_metrics.jsonl") as log:
        offset = 0

        def on_step(step: int, metrics: dict[str, float]) -> None:
            log.log(offset + step, metrics)
            bar.update(metrics)

        try:  # the demo lists are curated (solved teacher demos, deliberate guesses): train on all
            for episodes, phase_cfg in phases:
                run_sft(model, episodes, phase_cfg, seed=cfg.run.seed + offset, device=resolve_device(cfg),
                        pad_id=tokenizer.pad_token_id or 0, on_step=on_step,
                        micro_batch_tokens=cfg.optimizer.micro_batch_tokens)
                offset += phase_cfg.steps
        finally:
            bar.close()
    model.save_pretrained(warm, safe_serialization=True)
    tokenizer.save_pretrained(warm)
    info = {"demos": len(demos), "demo_s": demo_s, "sft_s": time.monotonic() - started - demo_s,
            "guess_demos": sum(1 for e in demos if e.tool_calls == 0),
            "sft_final_nll": mean_nll(model, phases[-1][0], device=resolve_device(cfg),
                                      pad_id=tokenizer.pad_token_id or 0, only_success=False,
                                      micro_batch_tokens=cfg.optimizer.micro_batch_tokens)}
    done.write_text(json.dumps(info, indent=1))  # the stage is complete: a resume skips it
    return str(warm), info
