"""An OpenAI-compatible HTTP server over any token `Engine` (stdlib only), for `toolgym serve`.

Why: a local checkpoint should be evaluable through the same client as an API model, and the
`openai` engine should be tested against a real server rather than a mock. Concurrent requests are
micro-batched (`BatchingEngine`): the worker takes every request waiting, groups them by sampling
parameters and runs one batched `generate` per group, so N concurrent clients cost about one batch.

Endpoints: GET /v1/models; POST /v1/completions (prompt: text, token ids, or lists of either);
POST /v1/chat/completions (messages rendered with the tokenizer's chat template). Supported fields:
max_tokens (max_completion_tokens), temperature, top_p, n, stop, seed, logprobs, and vLLM's
extensions `return_token_ids`, `include_stop_str_in_output`, `stop_token_ids`; streaming is not.
Replies carry `stop_reason` (the stop string or token that ended the text), as vLLM's do.
Binds to 127.0.0.1 by default: there is no authentication.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from toolgym.agents.chat import ChatRenderer
from toolgym.agents.engine import Engine, Generation, SamplingParams


class BatchingEngine:
    """Thread-safe front of an engine: concurrent `submit` calls are served in shared batches."""

    def __init__(self, engine: Engine, *, max_wait_s: float = 0.005) -> None:
        self.engine = engine
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[list[list[int]], SamplingParams, Future] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="toolgym-batcher", daemon=True)
        self._worker.start()

    def submit(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        future: Future = Future()
        self._queue.put((prompts, params, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            time.sleep(self.max_wait_s)  # let concurrent requests join the batch
            while not self._queue.empty():
                job = self._queue.get()
                if job is None:
                    self._run(jobs)
                    return
                jobs.append(job)
            self._run(jobs)

    def _run(self, jobs: list) -> None:
        groups: dict[SamplingParams, list] = {}
        for job in jobs:
            groups.setdefault(job[1], []).append(job)
        for params, group in groups.items():
            flat = [p for prompts, _, _ in group for p in prompts]
            try:
                outs = self.engine.generate(flat, params)
            except Exception as exc:  # report to every waiting client; keep serving
                for _, _, future in group:
                    future.set_exception(exc)
                continue
            start = 0
            for prompts, _, future in group:
                future.set_result(outs[start:start + len(prompts)])
                start += len(prompts)


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 and an OpenAI-style error body."""


class OpenAIApp:
    """The request handling, independent of the HTTP plumbing (so it can be tested directly)."""

    def __init__(self, engine: Engine, tokenizer: Any, model_name: str, max_tokens_default: int = 256):
        self.batcher = BatchingEngine(engine)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.max_tokens_default = max_tokens_default
        self.renderer = ChatRenderer(tokenizer) if getattr(tokenizer, "chat_template", None) else None

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": 0,
                                            "owned_by": "toolgym"}]}

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = self._prompts(body.get("prompt"))
        params, n = self._params(body, body.get("max_tokens"))
        gens = self.batcher.submit([p for p in prompts for _ in range(n)], params)
        want_lp = body.get("logprobs") is not None
        choices = []
        for i, g in enumerate(gens):
            choice = {"index": i, "text": self._text(g, body), "finish_reason": _finish(g),
                      "stop_reason": g.meta.get("stop"),
                      "logprobs": self._completion_logprobs(g) if want_lp else None}
            if body.get("return_token_ids"):
                choice["token_ids"] = g.ids
                choice["prompt_token_ids"] = prompts[i // n]
            choices.append(choice)
        return self._reply("text_completion", choices, sum(map(len, prompts)) * n, gens)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty list of {role, content} objects")
        if self.renderer is None:
            raise RequestError("this model's tokenizer has no chat template: use /v1/completions")
        turns = [_message(m) for m in messages]
        try:
            prompt = self.renderer.prompt_ids(turns)
        except Exception as exc:
            raise RequestError(f"could not render messages with the chat template: {exc}") from exc
        params, n = self._params(body, body.get("max_completion_tokens", body.get("max_tokens")))
        gens = self.batcher.submit([prompt] * n, params)
        choices = []
        for i, g in enumerate(gens):
            choice = {"index": i, "message": {"role": "assistant", "content": self._text(g, body)},
                      "finish_reason": _finish(g), "stop_reason": g.meta.get("stop"),
                      "logprobs": self._chat_logprobs(g) if body.get("logprobs") else None}
            if body.get("return_token_ids"):
                choice["token_ids"] = g.ids
            choices.append(choice)
        reply = self._reply("chat.completion", choices, len(prompt) * n, gens)
        if body.get("return_token_ids"):
            reply["prompt_token_ids"] = prompt
        return reply

    # -- helpers ----------------------------------------------------------------------------------

    def _prompts(self, prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str):
            return [self.tokenizer.encode(prompt, add_special_tokens=False)]
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            return [prompt]
        if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
            return [q for p in prompt for q in self._prompts(p)]
        raise RequestError("'prompt' must be a string, a list of token ids, or a list of either")

    def _params(self, body: dict[str, Any], max_tokens: Any) -> tuple[SamplingParams, int]:
        if body.get("stream"):
            raise RequestError("stream=true is not supported by toolgym serve")
        stop = body.get("stop") or ()
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            raise RequestError(f"'n' must be a positive integer, got {n!r}")
        try:
            params = SamplingParams(
                temperature=float(body.get("temperature", 1.0)), top_p=float(body.get("top_p", 1.0)),
                top_k=_top_k(body.get("top_k", 0)), max_tokens=int(max_tokens or self.max_tokens_default),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
                stop_token_ids=tuple(body.get("stop_token_ids") or ()), seed=body.get("seed"))
        except (TypeError, ValueError) as exc:
            raise RequestError(str(exc)) from exc
        return params, n

    def _text(self, g: Generation, body: dict[str, Any]) -> str:
        stop = g.meta.get("stop")
        if isinstance(stop, str) and not body.get("include_stop_str_in_output"):
            return g.text[:g.text.find(stop)] if stop in g.text else g.text
        return g.text

    def _completion_logprobs(self, g: Generation) -> dict[str, Any]:
        tokens = self.tokenizer.convert_ids_to_tokens(g.ids)
        return {"tokens": tokens, "token_logprobs": g.logprobs, "top_logprobs": None, "text_offset": None}

    def _chat_logprobs(self, g: Generation) -> dict[str, Any]:
        tokens = self.tokenizer.convert_ids_to_tokens(g.ids)
        return {"content": [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                            for t, lp in zip(tokens, g.logprobs, strict=True)]}

    def _reply(self, kind: str, choices: list, prompt_tokens: int, gens: Sequence[Generation]) -> dict:
        completion = sum(len(g.ids) for g in gens)
        return {"id": f"{kind}-{uuid.uuid4().hex[:16]}", "object": kind, "created": int(time.time()),
                "model": self.model_name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                          "total_tokens": prompt_tokens + completion}}


def _message(m: Any) -> dict[str, str]:
    if not isinstance(m, dict) or "role" not in m:
        raise RequestError(f"each message must be an object with 'role' and 'content', got {m!r}")
    content = m.get("content") or ""
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return {"role": str(m["role"]), "content": str(content)}


def _finish(g: Generation) -> str:
    if g.finish_reason == "error":
        raise RuntimeError(f"generation failed: {g.text}")
    return g.finish_reason


class _Handler(BaseHTTPRequestHandler):
    app: OpenAIApp  # set on the subclass made by make_server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, self.app.models())
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route GET {self.path}; try /v1/models")

    def do_POST(self) -> None:
        routes = {"/v1/completions": self.app.completions, "/v1/chat/completions": self.app.chat}
        handler = routes.get(self.path.rstrip("/"))
        if handler is None:
            self._error(404, f"no route POST {self.path}; known: {sorted(routes)}")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            self._send(200, handler(body))
        except (RequestError, json.JSONDecodeError) as exc:
            self._error(400, str(exc))
        except Exception as exc:
            self._error(500, f"{type(exc).__name__}: {exc}")

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": status}})


def make_server(engine: Engine, tokenizer: Any, *, model_name: str, host: str = "127.0.0.1",
                port: int = 8000) -> ThreadingHTTPServer:
    """A ready (bound, not yet serving) HTTP server; call `serve_forever()`, then `shutdown()`."""
    app = OpenAIApp(engine, tokenizer, model_name)
    handler = type("Handler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _top_k(value: object) -> int:
    """The request's `top_k` (a vLLM extension): -1 and 0 both mean off."""
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise RequestError(f"'top_k' must be an integer >= -1 (-1 or 0 = off), got {value!r}")
    return max(0, value)
