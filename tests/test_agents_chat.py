"""Token-faithful chat rendering: a property test over random multi-turn conversations, and the
template self-test on a faithful template and on one that rewrites history (Qwen3-style thinking
removal)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolgym.agents.chat import ChatRenderer, Conversation, TemplateError, check_chat_template
from toolgym.agents.tiny import cached_tiny_model


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache"))


_TEXT = st.text(st.sampled_from(list("abc xyz0123456789+-*/=()\n`<>_:éΩ")), min_size=0, max_size=40)
_FENCE = st.sampled_from(["", "```python\nprint(1)\n```\n", "<answer>42</answer>", "```\n", "\n\n"])
_TURN = st.tuples(_TEXT, _FENCE, st.booleans(), st.lists(st.tuples(st.sampled_from(["tool", "user"]), _TEXT),
                                                         min_size=1, max_size=2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(system=_TEXT, user=_TEXT, turns=st.lists(_TURN, min_size=1, max_size=4))
def test_random_conversations_are_token_faithful(tokenizer, system, user, turns) -> None:
    """For any conversation: mask-1 ids are exactly the sampled ids, mask-0 ids decode to exactly
    the rendered observations, and the whole stream decodes to the template's rendering."""
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    conv = Conversation(ChatRenderer(tokenizer), [{"role": "system", "content": system},
                                                  {"role": "user", "content": user}])
    sampled_turns, obs_ids = [], []
    for text, fence, ends_with_eot, observations in turns:
        ids = tokenizer.encode(text + fence, add_special_tokens=False) + ([eot] if ends_with_eot else [])
        ids = ids or [eot]  # an engine samples at least one token per turn
        logprobs = [-0.5 - i for i in range(len(ids))]
        conv.add_sampled(ids, logprobs, tokenizer.decode(ids, skip_special_tokens=True))
        sampled_turns.append((ids, logprobs))
        obs_ids.append(conv.add_observations([{"role": r, "content": c} for r, c in observations]))

    # the ids the trainer sees are the ids the engine sampled, turn by turn, with their log-probs
    segments = _segments(conv.loss_mask)
    policy = [(conv.response_ids[a:b], conv.logprobs[a:b]) for a, b, m in segments if m == 1]
    assert policy == [(ids, lps) for ids, lps in sampled_turns if ids]
    observation = [conv.response_ids[a:b] for a, b, m in segments if m == 0]
    assert observation == [ids for ids in obs_ids if ids]
    assert all(lp == 0.0 for lp, m in zip(conv.logprobs, conv.loss_mask, strict=True) if m == 0)
    # decoding gives the model's turns (mask 1) and the template's prompt / observations (mask 0)
    rendered = tokenizer.apply_chat_template(conv.messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(conv.prompt_ids + conv.response_ids) == rendered
    assert tokenizer.decode(conv.prompt_ids) == f"<|im_start|>system\n{system}<|im_end|>\n" \
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    for ids, (sampled, _), turn in zip(obs_ids, sampled_turns, turns, strict=True):
        observations = turn[3]
        closing = "\n" if sampled[-1] == eot else "<|im_end|>\n"
        shown = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in observations)
        assert tokenizer.decode(ids) == closing + shown + "<|im_start|>assistant\n"


def _segments(mask: list[int]) -> list[tuple[int, int, int]]:
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((start, i, mask[start]))
            start = i
    return out


def test_observation_delta_closes_an_unfinished_turn(tokenizer) -> None:
    renderer = ChatRenderer(tokenizer)
    history = [{"role": "user", "content": "Compute 2 + 2."}]
    fenced = tokenizer.encode("```python\nprint(2 + 2)\n```\n", add_special_tokens=False)
    obs = [{"role": "tool", "content": "4\n"}]
    delta = renderer.observation_delta(history, fenced, obs)
    assert delta == "<|im_end|>\n<|im_start|>tool\n4\n<|im_end|>\n<|im_start|>assistant\n"
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert renderer.observation_delta(history, [*fenced, eot], obs).startswith("\n<|im_start|>tool")


def _rewriting_tokenizer(tokenizer):
    import copy

    rewriting = copy.deepcopy(tokenizer)
    rewriting.chat_template = tokenizer.chat_template.replace(
        "message['content']",
        "(message['content'].split('</think>')[-1] if not loop.last else message['content'])")
    return rewriting


def test_template_self_test(tokenizer) -> None:
    good = check_chat_template(tokenizer)
    assert good.ok, good.message
    bad = check_chat_template(_rewriting_tokenizer(tokenizer))
    assert not bad.ok and "rewrites history" in bad.message
    no_tool = copy_with_template(tokenizer, tokenizer.chat_template.replace("'tool']", "'nobody']"))
    result = check_chat_template(no_tool)
    assert not result.ok and "unknown role tool" in result.message


def copy_with_template(tokenizer, template: str):
    import copy

    other = copy.deepcopy(tokenizer)
    other.chat_template = template
    return other


def test_check_chat_template_takes_a_path(tmp_path_factory: pytest.TempPathFactory) -> None:
    assert check_chat_template(cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache")).ok
    missing = check_chat_template(tmp_path_factory.mktemp("empty"))
    assert not missing.ok


def test_rewriting_template_fallback_stays_faithful(tokenizer) -> None:
    rewriting = _rewriting_tokenizer(tokenizer)
    messages = [{"role": "user", "content": "q"}]
    ids = tokenizer.encode("<think>\nhmm\n</think>\n```python\nprint(1)\n```\n", add_special_tokens=False)
    strict = Conversation(ChatRenderer(rewriting, on_rewrite="error"), messages)
    strict.add_sampled(ids, [0.0] * len(ids), tokenizer.decode(ids))
    with pytest.raises(TemplateError, match="rewrites history"):
        strict.add_observations([{"role": "tool", "content": "1"}])
    lenient = Conversation(ChatRenderer(rewriting), messages)
    lenient.add_sampled(ids, [0.0] * len(ids), tokenizer.decode(ids))
    with pytest.warns(RuntimeWarning, match="rewrites history"):
        obs = lenient.add_observations([{"role": "tool", "content": "1"}])
    assert lenient.response_ids == ids + obs  # the sampled ids are untouched
    assert tokenizer.decode(obs) == "<|im_end|>\n<|im_start|>tool\n1<|im_end|>\n<|im_start|>assistant\n"
