"""The like-for-like pieces of benchmarks/train_step.py (ours vs TRL's GRPOTrainer), without training.

What makes the multi-turn comparison fair is checked on real objects: the tiny model's real tokenizer
with TRL's real Qwen2.5 chat template, our real JSON tool parser, TRL's real response parser and our
real local sandbox. The timed comparison itself is the benchmark (`python benchmarks/train_step.py`),
not a test. Skipped when TRL (the `bench` extra) is not installed.
"""

from __future__ import annotations

import argparse

import pytest
from bench_support import benchmark_script

pytest.importorskip("trl", reason="TRL is the benchmark-only extra: pip install -e '.[bench]'")

@pytest.fixture(scope="module")
def bench():
    with benchmark_script("train_step") as module:
        yield module


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """An untrained tiny model saved with TRL's Qwen2.5 chat template, as the warm start saves it."""
    from toolgym.agents.tiny import build_tiny_model
    from transformers import AutoTokenizer
    from trl.chat_template_utils import qwen2_5_chat_template

    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = qwen2_5_chat_template
    tok.save_pretrained(path)
    return str(path)


def _args(bench) -> argparse.Namespace:
    return bench.parse_args(["--tool-calls", "2"])


@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
def test_prompt_ids_are_identical_on_both_sides(bench, tiny_dir, mode) -> None:
    assert bench.same_prompt_ids(tiny_dir, mode, _args(bench), n=3)


def test_multi_turn_system_prompt_carries_trls_tools_block(bench, tiny_dir) -> None:
    from transformers import AutoTokenizer

    system = bench.multi_turn_system_prompt(AutoTokenizer.from_pretrained(tiny_dir))
    assert system.startswith("You solve the user's task")  # our default prompt first
    assert '"name": "python"' in system and system.rstrip().endswith("</tool_call>")


def test_prompts_differ_without_the_tools_block(bench, tiny_dir) -> None:
    """The check can fail: TRL's tool-mode prompt is not our plain prompt."""
    import toolgym.envs as E
    from toolgym.agents.chat import ChatRenderer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    messages = E.make("toolgym/arith-v0", tool_format="json").reset(options={"index": 0})[0]
    trl = tok.apply_chat_template(messages, tools=[bench.python_tool()], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    assert ChatRenderer(tok).prompt_ids(messages) != list(trl)


def test_each_side_parses_the_others_tool_call(bench, tiny_dir) -> None:
    from toolgym.envs.parsers import get_parser
    from transformers import AutoTokenizer
    from trl.chat_template_utils import add_response_schema, parse_response

    code = 'x = 12 * 34\nprint(x, "done")'
    ours = get_parser("json")
    tok = add_response_schema(AutoTokenizer.from_pretrained(tiny_dir))
    tools = [bench.python_tool()]
    prompt = tok.apply_chat_template([{"role": "user", "content": "u"}], tools=tools,
                                     add_generation_prompt=True, tokenize=True, return_dict=False)
    # our teacher's turn, as TRL's trainer reads it (TRL's turn ends at the end-of-turn token)
    ids = tok.encode(ours.format_call(code) + "<|im_end|>", add_special_tokens=False)
    call = parse_response(tok, ids, prefix=list(prompt), tools=tools)["tool_calls"][0]["function"]
    assert call["name"] == "python" and call["arguments"] == {"code": code}
    # a turn as TRL's template renders a tool call, as our parser reads it
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "u"},
         {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
             "name": "python", "arguments": {"code": code}}}]}], tokenize=False)
    turn = rendered.split("<|im_start|>assistant\n", 1)[1].split("<|im_end|>", 1)[0]
    parsed = ours.parse(turn)
    assert parsed.kind == "code" and parsed.code == code


def test_trl_python_tool_returns_what_our_environment_shows(bench) -> None:
    from toolgym.envs.sandbox import make_sandbox

    backend = make_sandbox("local")
    try:
        python = bench.python_tool(backend)
        assert python("print(6 * 7)") == "42"
        assert python("1 / 0").endswith("ZeroDivisionError: division by zero")
    finally:
        backend.close()


def test_like_for_like_needs_same_prompts_and_close_work(bench) -> None:
    ours = {"tool_calls_per_episode": 0.95, "policy_tokens_per_episode": 50.0}
    assert bench.like_for_like(ours, {"tool_calls_per_episode": 0.9, "policy_tokens_per_episode": 46.0}, True)
    assert not bench.like_for_like(ours, {"tool_calls_per_episode": 0.9, "policy_tokens_per_episode": 46.0},
                                   False)
    assert not bench.like_for_like(ours, {"tool_calls_per_episode": 0.0, "policy_tokens_per_episode": 48.0},
                                   True)
    assert not bench.like_for_like(ours, {"tool_calls_per_episode": 0.95, "policy_tokens_per_episode": 30.0},
                                   True)
    none = {"tool_calls_per_episode": 0.0, "policy_tokens_per_episode": 40.0}
    assert bench.like_for_like(none, {"tool_calls_per_episode": 0.0, "policy_tokens_per_episode": 40.4}, True)


def test_a_model_without_trls_template_is_refused(bench, tmp_path) -> None:
    from toolgym.agents.tiny import build_tiny_model
    from transformers import AutoTokenizer

    path = build_tiny_model(tmp_path / "plain", seed=0)
    with pytest.raises(SystemExit, match=r"Qwen2\.5 chat template"):
        bench._require_qwen_template(AutoTokenizer.from_pretrained(path), str(path))


def test_trls_template_renders_our_rollouts_append_only(tiny_dir) -> None:
    """Our side renders tool outputs with the same template (as TRL's <tool_response> turns)."""
    from toolgym.agents.chat import check_chat_template

    check = check_chat_template(tiny_dir)
    assert check.ok, check.message
