"""An engine over any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, `toolgym serve`), stdlib only.

Why: held-out evaluation must cover API models and served checkpoints through one client. Two modes:
- `api="completions"` with a tokenizer: token prompts are sent as token-id arrays (the completions
  API accepts them); with `token_ids=True` the request also asks for vLLM's `return_token_ids` and
  `include_stop_str_in_output`, so the result is token-faithful (ids and log-probs as sampled).
  Without them, ids are re-tokenised from the text (`meta["token_faithful"] = False`).
- `api="chat"` (`ChatEngine.chat`): messages in, assistant text out, for models only reachable
  through a chat API. Ids are empty unless the server returns them.
Requests run concurrently (`max_concurrency` threads); a failed request (after `retries`) becomes a
`finish_reason="error"` generation holding the message, never an exception for the batch.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from toolgym.agents.engine import Generation, SamplingParams


class OpenAIEngine:
    """`Engine` (completions) and `ChatEngine` (chat) over an OpenAI-compatible HTTP API."""

    def __init__(self, base_url: str, model: str, *, tokenizer: Any = None, api: str = "chat",
                 api_key: str | None = None, token_ids: bool = False, timeout: float = 120.0,
                 max_concurrency: int = 16, retries: int = 2) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.tokenizer = tokenizer
        self.api = api
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.token_ids = token_ids
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.retries = retries

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        """Completions API with token-id prompts (one request per prompt, run concurrently)."""
        bodies = [dict(self._common(params), prompt=list(p)) for p in prompts]
        for body in bodies:
            body["logprobs"] = 0  # the sampled token's log-prob only
        return self._map(lambda b: self._completion(b, params), bodies)

    def chat(self, conversations: Sequence[Sequence[Mapping[str, str]]],
             params: SamplingParams) -> list[Generation]:
        """Chat API: one request per conversation, run concurrently."""
        bodies = [dict(self._common(params), messages=[dict(m) for m in conv]) for conv in conversations]
        return self._map(lambda b: self._chat(b, params), bodies)

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        raise NotImplementedError("an OpenAI-compatible endpoint is read-only: restart the server with "
                                  "the new checkpoint (toolgym serve --model PATH)")

    def list_models(self) -> list[str]:
        return [m["id"] for m in self._request("GET", "/models", None)["data"]]

    # -- internals --------------------------------------------------------------------------------

    def _common(self, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.top_k > 0:  # not an OpenAI field: vLLM's and toolgym serve's extension, sent only when on
            body["top_k"] = params.top_k
        if self.token_ids:  # vLLM-style extensions; plain OpenAI rejects unknown fields
            body.update(return_token_ids=True, include_stop_str_in_output=True)
            if params.stop_token_ids:
                body["stop_token_ids"] = list(params.stop_token_ids)
        return body

    def _map(self, fn: Any, bodies: list[dict[str, Any]]) -> list[Generation]:
        def safe(body: dict[str, Any]) -> Generation:
            try:
                return fn(body)
            except Exception as exc:
                return Generation([], [], "error", f"{type(exc).__name__}: {exc}")

        if len(bodies) <= 1:
            return [safe(b) for b in bodies]
        with ThreadPoolExecutor(min(self.max_concurrency, len(bodies))) as pool:
            return list(pool.map(safe, bodies))

    def _completion(self, body: dict[str, Any], params: SamplingParams) -> Generation:
        choice = self._request("POST", "/completions", body)["choices"][0]
        lp = choice.get("logprobs") or {}
        return self._generation(choice, choice.get("text") or "", lp.get("token_logprobs"), params)

    def _chat(self, body: dict[str, Any], params: SamplingParams) -> Generation:
        if self.token_ids:
            body["logprobs"] = True
        choice = self._request("POST", "/chat/completions", body)["choices"][0]
        content = (choice.get("logprobs") or {}).get("content") or []
        text = (choice.get("message") or {}).get("content") or ""
        return self._generation(choice, text, [c["logprob"] for c in content] or None, params)

    def _generation(self, choice: dict[str, Any], text: str, logprobs: list[float] | None,
                    params: SamplingParams) -> Generation:
        reason = choice.get("finish_reason") or "stop"
        stop = choice.get("stop_reason")
        if not self.token_ids and isinstance(stop, str) and reason == "stop" and not text.endswith(stop):
            text += stop  # the server cut the stop string (e.g. a closing code fence): restore it
        ids = choice.get("token_ids")
        faithful = ids is not None
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False) if self.tokenizer else []
        if logprobs is None or len(logprobs) != len(ids):
            logprobs = [0.0] * len(ids)
        reason = reason if reason in ("stop", "length") else "stop"
        meta = {"token_faithful": faithful, "stop": stop}
        return Generation(list(ids), [float(x) for x in logprobs], reason, text, meta)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:500]
                last = RuntimeError(f"HTTP {exc.code} from {self.base_url}{path}: {detail}")
                if exc.code < 500 and exc.code != 429:
                    raise last from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = RuntimeError(f"cannot reach {self.base_url}{path}: {exc}")
            time.sleep(0.5 * 2**attempt)
        assert last is not None
        raise last


def parse_model_spec(spec: str) -> tuple[str, str]:
    """`openai:NAME@URL` -> (NAME, URL); a clear error otherwise."""
    if not spec.startswith("openai:") or "@" not in spec:
        raise ValueError(f"expected openai:NAME@URL (e.g. openai:gpt-4o-mini@https://api.openai.com/v1), "
                         f"got {spec!r}")
    name, url = spec[len("openai:"):].rsplit("@", 1)
    if not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected openai:NAME@URL with an http(s) URL, got {spec!r}")
    return name, url
