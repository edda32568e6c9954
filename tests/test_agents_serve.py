"""`toolgym serve` over the tiny model, exercised end to end by the `openai` engine on loopback.

A real server subprocess (`python -m toolgym.cli serve --port 0`), real HTTP on 127.0.0.1, bounded
requests. Token-faithful mode (vLLM's `return_token_ids` extension) must give exactly the ids and
log-probs the in-process HF engine gives for the same greedy request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolgym.agents.engine import SamplingParams
from toolgym.agents.hf_engine import HFEngine
from toolgym.agents.openai_engine import OpenAIEngine, parse_model_spec
from toolgym.agents.tiny import cached_tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "toolgym.cli", "serve", "--model", str(model_path),
                             "--port", "0", "--name", "tiny", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "listening on" not in line:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                pytest.fail(f"toolgym serve exited with {proc.returncode}")
        url = line.split("listening on ")[1].split()[0]
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _greedy(stop: tuple[str, ...] = ()) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=12, stop=stop)


def test_models_endpoint(server: str) -> None:
    assert OpenAIEngine(server, "tiny").list_models() == ["tiny"]


def test_completions_with_token_ids_match_the_local_engine(server: str, model_path: Path) -> None:
    local = HFEngine.from_pretrained(model_path)
    tok = local.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("Compute 12 * 34.", "print(")]
    remote = OpenAIEngine(server, "tiny", tokenizer=tok, api="completions", token_ids=True)
    got, want = remote.generate(prompts, _greedy()), local.generate(prompts, _greedy())
    for g, w in zip(got, want, strict=True):
        assert g.ids == w.ids and g.finish_reason == w.finish_reason == "length"
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
        assert g.text == w.text and g.meta["token_faithful"]


def test_stop_strings_are_restored_in_text_mode(server: str, model_path: Path) -> None:
    local = HFEngine.from_pretrained(model_path)
    prompt = local.tokenizer.encode("Compute 12 * 34.", add_special_tokens=False)
    free = local.generate([prompt], _greedy())[0]
    stop = free.text[4:6]
    remote = OpenAIEngine(server, "tiny", tokenizer=local.tokenizer, api="completions")
    out = remote.generate([prompt], _greedy(stop=(stop,)))[0]
    assert out.finish_reason == "stop" and out.meta["stop"] == stop
    assert out.text.endswith(stop) and free.text.startswith(out.text)


def test_chat_api_end_to_end(server: str, model_path: Path) -> None:
    local = HFEngine.from_pretrained(model_path)
    conv = [{"role": "system", "content": "Use Python."}, {"role": "user", "content": "Compute 2 + 2."}]
    remote = OpenAIEngine(server, "tiny", api="chat", token_ids=True)
    outs = remote.chat([conv, conv], _greedy())
    prompt = local.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    want = local.generate([local.tokenizer.encode(prompt, add_special_tokens=False)], _greedy())[0]
    for out in outs:
        assert out.ids == want.ids and out.text == want.text
        assert out.logprobs == pytest.approx(want.logprobs, abs=1e-4)


def test_bad_requests_are_clear_errors(server: str) -> None:
    body = json.dumps({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}).encode()
    req = urllib.request.Request(server + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400
    assert "unknown role wizard" in json.loads(info.value.read())["error"]["message"]
    # a failing request is a per-prompt error generation, never an exception for the batch
    out = OpenAIEngine(server, "tiny", api="chat").chat([[{"role": "wizard", "content": "x"}]], _greedy())
    assert out[0].finish_reason == "error" and "HTTP 400" in out[0].text


def test_unreachable_server_is_an_error_generation() -> None:
    engine = OpenAIEngine("http://127.0.0.1:9/v1", "x", api="chat", retries=0, timeout=5)
    out = engine.chat([[{"role": "user", "content": "hi"}]], _greedy())
    assert out[0].finish_reason == "error" and "cannot reach" in out[0].text


def test_evaluate_an_openai_chat_model_end_to_end(server: str) -> None:
    from toolgym.agents.evaluate import evaluate

    result = evaluate(OpenAIEngine(server, "tiny", api="chat"), None, "toolgym/arith-v0", n=2, ks=(1, 2),
                      num_problems=2, sampling=SamplingParams(temperature=1.0, max_tokens=16, seed=0),
                      env_kwargs={"max_turns": 2}, progress=False, keep_episodes=True)
    assert result["overall"]["episodes"] == 4
    assert result["overall"]["finish_reasons"].get("error", 0) == 0
    for ep in result["episodes"]:  # text mode: the chat is kept, there are no token ids
        assert ep.messages[2]["role"] == "assistant" and ep.response_ids == [] and ep.turns >= 1


def test_model_spec_parsing() -> None:
    assert parse_model_spec("openai:gpt-4o-mini@https://api.openai.com/v1") == (
        "gpt-4o-mini", "https://api.openai.com/v1")
    with pytest.raises(ValueError, match="openai:NAME@URL"):
        parse_model_spec("gpt-4o")
