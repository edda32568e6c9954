"""The engine contract: token prompts in, sampled token ids (+ behaviour log-probs) out.

Why token level: RL on multi-turn trajectories needs the exact ids the policy sampled and their
log-probs under the sampling distribution. Re-tokenising text is not faithful (BPE merges differ
across a turn boundary), so engines never see environments or chat messages -- the rollout renders
observations with the chat template and hands engines token prompts. Text-only endpoints (OpenAI
chat APIs) are adapters on top (`openai_engine.py`), used for evaluation, not training.

Conventions every engine follows (so episodes from HF, vLLM or a server are interchangeable):
- `Generation.ids` holds every sampled token, including a sampled stop token (e.g. `<|im_end|>`)
  and the whole token in which a stop string completed (never cut inside a token);
- `Generation.logprobs[i]` is `log softmax(logits / T)[ids[i]]` with `T = temperature` (for
  `temperature == 0`, greedy decoding, `T = 1`): the temperature-scaled full-vocabulary
  distribution, before top-p truncation. This is what the learner recomputes with a forward pass.
- `finish_reason`: "stop" (a stop token or a stop string), "length" (`max_tokens` or the model's
  context), "error" (the engine failed for this prompt; `text` holds the message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

# why a generation stopped (an episode ends for an `envs.info.FinishReason`)
StopReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one batch. Frozen (hashable) so servers can group requests by parameters."""

    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling; 1.0 = the full distribution
    top_k: int = 0  # sample among the k most likely tokens (before top_p, as vLLM); 0 = off
    max_tokens: int = 256  # per generation (one assistant turn)
    stop: tuple[str, ...] = ()  # stop strings, e.g. the parser's closing code fence
    stop_token_ids: tuple[int, ...] = ()  # extra stop tokens on top of the tokenizer's end of turn
    seed: int | None = None  # seeds this call's sampler; None = nondeterministic

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

    def with_(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (e.g. a per-call seed or the parser's stop strings)."""
        return replace(self, **changes)


@dataclass
class Generation:
    """One completion. `ids` and `logprobs` have the same length (one entry per sampled token)."""

    ids: list[int]  # [n] sampled token ids, stop token included
    logprobs: list[float]  # [n] behaviour log-probs (see module docstring)
    finish_reason: StopReason
    text: str = ""  # the decoded ids (special tokens skipped); the error message when "error"
    meta: dict[str, Any] = field(default_factory=dict)  # engine-specific (e.g. which stop matched)


@runtime_checkable
class Engine(Protocol):
    """Generates token ids (+ log-probs) for a batch of token prompts."""

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        """One `Generation` per prompt, in order. A per-prompt failure is a `finish_reason="error"`."""
        ...

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Load new policy weights in place (no restart)."""
        ...


@runtime_checkable
class ChatEngine(Protocol):
    """A text-level engine (e.g. an OpenAI chat endpoint): messages in, assistant text out.

    Used for evaluation of API models, where token ids are not available; rollouts through a chat
    engine keep the messages and leave the id fields of the episode empty.
    """

    def chat(self, conversations: Sequence[Sequence[Mapping[str, str]]],
             params: SamplingParams) -> list[Generation]: ...
