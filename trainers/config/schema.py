"""The training configuration: one small typed dataclass per component, composed into `TrainConfig`.

A run is described by one YAML recipe (trainers/config/recipes/NAME.yaml) plus CLI overrides
`key.sub=value`; `load_config` (recipes.py) validates both against these dataclasses, so a typo or
a bad value fails before any model is built, with an error that names the key and the allowed keys
or values. Defaults live here and only here (never `cfg.get("x", 3.0)` in the code that uses them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from toolgym.trainers.algo.loss_config import LossConfig
from toolgym.trainers.config.yaml_io import ConfigError, to_dict


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class ModelConfig:
    """Which policy to train. No name = the tiny quickstart model built locally (nothing downloaded)."""

    name_or_path: str | None = None  # HF id or local dir; None builds the tiny model into the run dir
    tiny: dict[str, Any] = field(default_factory=dict)  # extra kwargs for agents' build_tiny_model
    dtype: Literal["float32", "bfloat16"] = "float32"  # master weights; bf16 autocast is used on GPU
    gradient_checkpointing: bool = False


@dataclass
class EngineConfig:
    """The inference engine inside each rollout worker."""

    kind: Literal["hf", "vllm"] = "hf"
    gpu_memory_utilization: float = 0.5  # vllm only
    max_batch: int = 64  # prompts generated together (hf)

    def __post_init__(self) -> None:
        _check(0.0 < self.gpu_memory_utilization <= 1.0, "gpu_memory_utilization must be in (0, 1]")
        _check(self.max_batch >= 1, "max_batch must be >= 1")


@dataclass
class SamplingConfig:
    """Sampling for training rollouts (evaluation has its own temperature in EvalConfig)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # sample among the k most likely tokens (hf, vllm; sent to servers when > 0); 0 = off
    max_new_tokens: int = 256  # per assistant turn
    max_episode_tokens: int = 2048  # prompt + all turns; beyond it the episode is truncated

    def __post_init__(self) -> None:
        _check(self.temperature >= 0.0, "temperature must be >= 0")
        _check(0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]")
        _check(self.max_new_tokens >= 1, "max_new_tokens must be >= 1")
        _check(self.top_k >= 0, f"sampling.top_k must be >= 0 (0 = off), got {self.top_k}")


@dataclass
class RolloutConfig:
    """Rollout workers, environments and the sandbox they use."""

    prompts_per_step: int = 8  # task requests per training step
    group_size: int = 8  # episodes per request (GRPO group)
    num_workers: int = 1  # rollout actors (each with its own engine and sandbox pool)
    cpus_per_worker: float = 1.0  # Ray resources declared per actor
    gpus_per_worker: float = 0.0
    sandbox: str = "local"  # a sandbox backend name (registry of toolgym.envs.sandbox; plugins welcome)
    sandbox_pool: int = 4  # warm sessions per worker
    max_turns: int = 4
    max_tool_calls: int = 4
    tool_format: str | None = None  # None = each family's own default
    env: dict[str, Any] = field(default_factory=dict)  # more EnvConfig fields, e.g. system_prompt
    filter_zero_variance: bool = True  # drop groups whose successes are all equal (DAPO / Klear)
    max_refill_rounds: int = 0  # extra rollout rounds to refill dropped groups
    mask_truncated: bool = False  # zero loss weight for truncated episodes (DeepCoder)
    request_retries: int = 2  # re-submissions of a request whose worker died

    def __post_init__(self) -> None:
        for name in ("prompts_per_step", "group_size", "num_workers", "sandbox_pool", "max_turns"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1")
        _check(self.max_refill_rounds >= 0 and self.request_retries >= 0, "retries must be >= 0")


@dataclass
class OptimizerConfig:
    """AdamW, its schedule, and how a rollout batch is split into updates."""

    lr: float = 1e-6
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0  # optimizer steps of linear warmup from 0
    min_lr_ratio: float = 0.0  # floor of the decay, as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    micro_batch_tokens: int = 4096  # token budget of one forward/backward (micro-batches packed by it)
    share_prefix: bool = True  # feed a micro-batch's common prefix once (exact; one rank or DDP, not FSDP2)
    mini_batches: int = 1  # optimizer steps per pass over a rollout batch
    epochs: int = 1  # passes over a rollout batch; >1 recomputes old log-probs before the first
    # recompute the behaviour log-probs with the learner before the first update even with one epoch
    # (verl's choice: ratios then start at exactly 1 whatever the engine's numerics); False = the engine's
    recompute_old_logprobs: bool = False

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr must be > 0")
        _check(len(self.betas) == 2, "betas must have two values")
        _check(self.micro_batch_tokens >= 1, "micro_batch_tokens must be >= 1")
        _check(self.mini_batches >= 1 and self.epochs >= 1, "mini_batches and epochs must be >= 1")

    @property
    def updates_per_rollout(self) -> int:
        return self.mini_batches * self.epochs


@dataclass
class AlgoConfig:
    """The advantage estimator (registry `toolgym.trainers.algo.advantages`) and its knobs."""

    advantage: str = "grpo"
    std_eps: float = 1e-6  # grpo: added to the group std
    whiten_eps: float = 1e-8  # reinforce_pp*: added to the batch variance
    # reinforce_pp: per-token reward -kl_coef * KL(pi_old || pi_ref) (k1, on the policy's tokens) before
    # the return-to-go; the reference is loss.kl_reference (default: the run's starting policy)
    kl_coef: float = 0.0

    def __post_init__(self) -> None:
        _check(self.std_eps >= 0 and self.whiten_eps >= 0,
               f"algo.std_eps and algo.whiten_eps must be >= 0, got {self.std_eps}, {self.whiten_eps}")
        _check(self.kl_coef >= 0, f"algo.kl_coef must be >= 0, got {self.kl_coef}")
        _check(not self.kl_coef or self.advantage == "reinforce_pp",
               f"algo.kl_coef (KL in the reward) applies to algo.advantage=reinforce_pp only, got "
               f"advantage={self.advantage!r}; use loss.kl_coef for a KL term in the loss")


@dataclass
class CurriculumConfig:
    """The task scheduler: `toolgym.curriculum.make_scheduler(scheduler, train task ids, **options)`.

    `options` are the scheduler's own keys (e.g. potential: stages, steps_per_stage, unit,
    instances_per_family); an unknown key is an error listing the allowed ones.
    """

    scheduler: str = "potential"
    options: dict[str, Any] = field(default_factory=dict)
    # the trainer's probe before the first RL step, for schedulers that rank units by measured success
    # (potential, difficulty_band): False = rank unmeasured units (in list order, said in the log)
    probe: bool = True
    probe_samples: int | None = None  # episodes per unit; None = 20 per family unit (R1-CI), a group each
    # for instance units

    def __post_init__(self) -> None:
        _check(self.probe_samples is None or self.probe_samples >= 1,
               f"curriculum.probe_samples must be >= 1 (episodes per unit), got {self.probe_samples}")


@dataclass
class EvalConfig:
    """Held-out evaluation during and after training."""

    every: int = 0  # training steps between evaluations; 0 = only before and after
    # also evaluate after the step in which the run's generated policy tokens (probe included) pass
    # a multiple of this; 0 = off. Curves at fixed token checkpoints compare schedulers at equal cost
    every_tokens: int = 0
    split: str = "heldout"
    problems: int = 32  # held-out instances per task
    n: int = 1  # samples per instance
    ks: tuple[int, ...] = (1,)
    temperature: float = 0.0  # 0 = greedy
    # with a warm start: also evaluate the model as it was before it (RUN_DIR/eval/base.json, the
    # summary's heldout_pass1_base) -- a pretrained model's own figure; a random tiny one scores 0
    before_warm_start: bool = False
    # evaluations during training run on a worker of their own, on a snapshot of the weights, while
    # training goes on; logged when done, tagged with their weights' step (eval/policy_version). The
    # final evaluation is awaited. Ray only (one more rollout worker's resources); --no-ray evaluates
    # at once, as without it
    background: bool = False

    def __post_init__(self) -> None:
        _check(self.n >= max(self.ks), f"eval.n ({self.n}) must be >= the largest k in eval.ks {self.ks}")
        _check(self.every >= 0 and self.every_tokens >= 0,
               f"eval.every and eval.every_tokens must be >= 0 (0 = off), got {self.every}, "
               f"{self.every_tokens}")


@dataclass
class CheckpointConfig:
    every: int = 0  # training steps between checkpoints; 0 = only at the end
    keep: int = 2  # most recent checkpoints kept


@dataclass
class SFTConfig:
    """The warm start (SFT cold start) before RL: on Episode JSONL, else on generated teacher demos.

    `toolgym train` runs it for any model when `steps > 0` (`--skip-sft` skips it)."""

    data: str | None = None  # Episode JSONL made with this model's tokenizer; None = generate teacher demos
    demos: int = 64  # teacher demos generated per task when data is None
    steps: int = 0  # 0 = no warm start (RL from the model as it is); recipes that cold-start set it
    batch_size: int = 8  # episodes per optimizer step
    lr: float = 1e-3
    warmup_steps: int = 5
    only_success: bool = True  # sft.data: train on its successful episodes only (teacher demos: solved ones)


@dataclass
class QuickstartConfig:
    """The quickstart's deliberately imperfect warm start and its time budget (trainers/run/quickstart.py).

    `guess_fraction` of the teacher demos answer at once with a wrong integer, without the tool (integer
    answers only); after `sft.steps` on the tool demos, `guess_steps` more steps train on the mix."""

    guess_fraction: float = 0.0
    guess_steps: int = 0
    budget_s: float | None = None  # the whole run (warm start + RL + final eval): RL stops early to fit

    def __post_init__(self) -> None:
        _check(0.0 <= self.guess_fraction < 1.0,
               f"quickstart.guess_fraction must lie in [0, 1) (the share of tool-free guessing demos), "
               f"got {self.guess_fraction}")
        _check(self.guess_steps >= 0, f"quickstart.guess_steps must be >= 0, got {self.guess_steps}")
        _check((self.guess_fraction > 0) == (self.guess_steps > 0),
               "quickstart.guess_fraction and quickstart.guess_steps go together: the guesses are trained on "
               f"only in the guess_steps phase (got guess_fraction={self.guess_fraction}, guess_steps="
               f"{self.guess_steps}); set both, or both to 0")
        _check(self.budget_s is None or self.budget_s > 0,
               f"quickstart.budget_s must be > 0 seconds or null, got {self.budget_s}")


@dataclass
class RunConfig:
    """What to train on, for how long, where to write, and how to place the stages."""

    suite: str = "quickstart"
    tasks: list[str] = field(default_factory=list)  # explicit task ids; overrides suite
    steps: int = 20
    seed: int = 0
    output: str | None = None  # run directory; None = runs/<timestamp>
    device: Literal["auto", "cpu", "cuda"] = "auto"
    ray: Literal["local", "cluster", "off"] = "local"  # off = same stages in one process
    ray_address: str | None = None  # with ray=cluster
    ray_num_cpus: int = 2  # local Ray only
    threads: int | None = None  # torch intra-op threads of the driver (learner); None = torch's default
    time_limit_s: float | None = None  # stop starting new steps after this long (then eval + checkpoint)
    # stop starting new steps once the run generated this many policy tokens (the curriculum's probe and
    # the filter's refills included; then eval + checkpoint): equal-cost comparisons; None = run.steps only
    token_budget: int | None = None
    # rollouts ahead of the learner (trainers/run/ahead.py): the episodes a step trains on were
    # generated with weights at most this many updates old, and the next steps' rollouts run while the
    # learner trains. 0 = the synchronous loop (generate, learn, sync, repeat)
    max_staleness: int = 0
    progress: bool = True
    log: list[str] = field(default_factory=list)  # extra metric sinks: tensorboard, wandb (loggers.py)
    # task id -> keyword arguments of its family, used wherever an environment of that task is built
    # (training rollouts and held-out eval), e.g. {"toolgym/code-v0": {"reward": "hard"}}; checked
    # against the run's tasks and the family's parameters by `toolgym.trainers.config.checks`
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # learner ranks: 1 = the learner lives in the driver process; N > 1 = N Ray actors forming one
    # torch.distributed group (gloo on CPU, nccl on CUDA with a GPU each), see trainers/run/learner_group.py
    learners: int = 1
    learner_strategy: Literal["ddp", "fsdp2"] = "ddp"  # fsdp2 shards the model (too big for one device)
    cpus_per_learner: float = 1.0  # Ray CPUs declared per learner actor (also its torch threads, >= 1)

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps must be >= 0")
        _check(self.token_budget is None or self.token_budget >= 1,
               f"run.token_budget must be >= 1 policy tokens or null, got {self.token_budget}")
        _check(self.max_staleness >= 0, f"run.max_staleness must be >= 0 weight updates (0 = synchronous), "
                                        f"got {self.max_staleness}")
        _check(self.learners >= 1, f"run.learners must be >= 1 (learner ranks), got {self.learners}")
        _check(self.learners == 1 or self.ray != "off",
               f"run.learners={self.learners} needs Ray to place the learner ranks, but run.ray is off "
               f"(--no-ray); use run.ray=local or run.ray=cluster, or run.learners=1")
        _check(self.cpus_per_learner > 0, f"run.cpus_per_learner must be > 0, got {self.cpus_per_learner}")
        for task_id, options in self.task_options.items():
            _check(isinstance(options, dict) and all(isinstance(k, str) for k in options),
                   f"task_options[{task_id!r}] must be a mapping of family keyword arguments, e.g. "
                   f"{{reward: hard}}; got {options!r}")


@dataclass
class TrainConfig:
    """One run: every component's config. Built by `load_config`; saved into each checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    quickstart: QuickstartConfig = field(default_factory=QuickstartConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self, **sections: Any) -> TrainConfig:
        return dataclasses.replace(self, **sections)


__all__ = [
    "AlgoConfig", "CheckpointConfig", "ConfigError", "CurriculumConfig", "EngineConfig", "EvalConfig",
    "ModelConfig", "OptimizerConfig", "QuickstartConfig", "RolloutConfig", "RunConfig", "SFTConfig",
    "SamplingConfig",
    "TrainConfig",
]
