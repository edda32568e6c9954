"""The vLLM engine (GPUs): token prompts in, sampled ids and log-probs out; weights updated in place.

Why vLLM: paged attention and continuous batching make rollouts on GPUs an order of magnitude faster
than the transformers loop. Kept thin on purpose -- the conventions are those of `engine.py`:
- prompts go in as `TokensPrompt(prompt_token_ids=...)`; `ids` are the output token ids, a sampled
  stop token included (vLLM keeps eos in `token_ids`); the text keeps a matched stop string
  (`include_stop_str_in_output=True`), like the HF engine;
- log-probs: the engine is created with `logprobs_mode="processed_logprobs"`, i.e. after temperature
  (and top-k/top-p, so use `top_p=1.0` for training, where it equals `log softmax(logits / T)`);
  `SamplingParams(logprobs=0)` returns just the sampled token's;
- a `seed` is made per prompt (`seed + i`) so that the G identical prompts of a group differ;
- `update_weights(state_dict)`: the learner's tensors are sent to every worker with
  `LLM.collective_rpc` and loaded by the model's own `load_weights` (a worker extension class, so it
  works whatever the worker class), then the prefix cache is reset. No restart. This copies through
  the RPC channel; an NCCL/IPC broadcast is the faster path for large models and is not built here.

vLLM is an optional extra: `pip install 'toolgym[vllm]'`. Importing this module never imports vLLM;
constructing a `VLLMEngine` without it raises an error that says so. Tested only where a GPU exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from toolgym.agents.engine import Generation, SamplingParams

_EXTENSION = "toolgym.agents.vllm_engine.WeightSyncExtension"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError("VLLMEngine needs vLLM, an optional extra: pip install 'toolgym[vllm]' "
                          "(on a CUDA machine); on CPU use HFEngine") from exc
    return vllm


class WeightSyncExtension:
    """Mixed into vLLM's worker class (`worker_extension_cls`): runs inside each worker process."""

    def toolgym_load_weights(self, named_tensors: list[tuple[str, Any]]) -> int:
        model = self.model_runner.model  # type: ignore[attr-defined]
        device = next(model.parameters()).device
        loaded = model.load_weights(weights=((n, t.to(device)) for n, t in named_tensors))
        return len(loaded) if loaded is not None else len(named_tensors)


class VLLMEngine:
    """`Engine` over `vllm.LLM` (offline, in-process driver)."""

    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.5, max_model_len: int | None = None,
                 **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        self.llm = vllm.LLM(model=model, tokenizer=tokenizer, dtype=dtype,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            logprobs_mode="processed_logprobs", worker_extension_cls=_EXTENSION,
                            **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        vllm = _import_vllm()
        from vllm.inputs import TokensPrompt

        per_prompt = [self._params(vllm, params, i) for i in range(len(prompts))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                    sampling_params=per_prompt, use_tqdm=False)
        return [self._generation(o.outputs[0]) for o in outputs]

    def update_weights(self, state_dict: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        items = state_dict.items() if isinstance(state_dict, Mapping) else state_dict
        named = [(name.removeprefix("module.").removeprefix("_orig_mod."), t.detach().cpu())
                 for name, t in items]
        self.llm.collective_rpc("toolgym_load_weights", args=(named,))
        self.llm.reset_prefix_cache()

    @staticmethod
    def _params(vllm: Any, params: SamplingParams, i: int) -> Any:
        return vllm.SamplingParams(
            temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1, max_tokens=params.max_tokens,
            stop=list(params.stop) or None, stop_token_ids=list(params.stop_token_ids) or None,
            seed=None if params.seed is None else params.seed + i, logprobs=0,
            include_stop_str_in_output=True, skip_special_tokens=True)

    @staticmethod
    def _generation(out: Any) -> Generation:
        ids = list(out.token_ids)
        logprobs = [float(step[t].logprob) for t, step in zip(ids, out.logprobs or [], strict=False)]
        if len(logprobs) != len(ids):
            logprobs = [0.0] * len(ids)
        reason = out.finish_reason if out.finish_reason in ("stop", "length") else "error"
        return Generation(ids, logprobs, reason, out.text, {"stop": out.stop_reason})
