"""Rollouts on the real arith environment, real local sandbox and the real tiny model.

The must-show properties of token-faithful multi-turn episodes:
- decoding the loss-mask-1 tokens gives exactly the model's turns, the mask-0 tokens exactly the
  prompt and the rendered tool outputs / environment messages;
- the ids the trainer sees are the ids the engine sampled;
- behaviour log-probs equal a fresh forward pass at the sampling temperature (1e-4).
Plus groups forking a set-up session, and failures (engine, verifier, agent) recorded as data.
Failure injection wraps the real engine; nothing else is faked.
"""

from __future__ import annotations

import pytest
import torch
from toolgym.agents.chat import ChatRenderer
from toolgym.agents.engine import Generation, SamplingParams
from toolgym.agents.hf_engine import HFEngine
from toolgym.agents.policies import EngineAgent, TeacherAgent
from toolgym.agents.rollout import RolloutRunner
from toolgym.agents.tiny import cached_tiny_model
from toolgym.envs import registry
from toolgym.envs.task import Problem, Score
from toolgym.envs.types import TaskRequest

ARITH = "toolgym/arith-v0"
STATE = "agents-test/state-v0"
TEMPERATURE = 0.9


class StateFamily:
    """An instance whose interpreter starts with `secret = 41`; answering "boom" crashes the verifier."""

    name = "agents-test-state"
    splits = ("train", "heldout")
    tool_format = "fenced"

    def problem(self, split: str, index: int) -> Problem:
        return Problem(prompt="What is secret + 1?", answer=42, index=index, split=split,
                       setup_code="secret = 41", reference_code="print(secret + 1)")

    def verify(self, problem: Problem, answer: str, new_session) -> Score:
        if answer == "boom":
            raise RuntimeError("verifier bug on purpose")
        return Score(1.0 if answer.strip() == "42" else 0.0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core box, OpenMP spinning makes 2 threads ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    if STATE not in registry.list_tasks():
        registry.register(STATE, StateFamily, description="agents tests: state set up before turn 1")
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HFEngine:
    return HFEngine.from_pretrained(cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache"))


class Recording:
    """The real engine, recording what it sampled for which prompt (and failing on request)."""

    def __init__(self, engine: HFEngine, fail_rows: set[int] = frozenset(), raise_call: int | None = None):
        self.engine, self.max_context = engine, engine.max_context
        self.sampled: dict[tuple[int, ...], list[Generation]] = {}  # group members share prompts
        self.fail_rows, self.raise_call, self.calls = fail_rows, raise_call, 0

    def generate(self, prompts, params):
        self.calls += 1
        if self.calls == self.raise_call:
            raise RuntimeError("engine crashed on purpose")
        gens = self.engine.generate(prompts, params)
        for row, (p, g) in enumerate(zip(prompts, gens, strict=True)):
            if row in self.fail_rows and self.calls == 1:
                gens[row] = Generation([], [], "error", "out of memory on purpose")
            self.sampled.setdefault(tuple(p), []).append(g)
        return gens


class TeacherThenModel:
    """Turn 1 from the teacher (a real tool call), later turns sampled by the model."""

    def __init__(self, engine, tokenizer):
        self.teacher, self.model = TeacherAgent(tokenizer), EngineAgent(engine)

    def act(self, states, params):
        out = [None] * len(states)
        first = [i for i, s in enumerate(states) if s.turn == 0]
        later = [i for i, s in enumerate(states) if s.turn > 0]
        for idx, agent in ((first, self.teacher), (later, self.model)):
            if idx:
                for i, g in zip(idx, agent.act([states[i] for i in idx], params), strict=True):
                    out[i] = g
        return out


def _segments(mask):
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((start, i, mask[start]))
            start = i
    return out


def _observations_between(messages):
    """The messages after each assistant turn, up to the next assistant turn."""
    groups, current = [], None
    for m in messages[2:]:
        if m["role"] == "assistant":
            if current is not None:
                groups.append(current)
            current = []
        else:
            current.append(m)
    return groups


def test_multi_turn_episodes_are_token_faithful(engine: HFEngine) -> None:
    tok = engine.tokenizer
    recording = Recording(engine)
    sampling = SamplingParams(temperature=TEMPERATURE, max_tokens=24, seed=5)
    with RolloutRunner(TeacherThenModel(recording, tok), tok, group_size=2, sampling=sampling,
                       env_kwargs={"max_turns": 3}, keep_messages=True) as runner:
        episodes = runner.run([TaskRequest(ARITH, i, "train") for i in range(3)])
    assert len(episodes) == 6 and all(e.finish_reason != "error" for e in episodes), episodes[0].error
    for ep in episodes:
        assert ep.turns >= 2 and ep.tool_calls >= 1
        segments = _segments(ep.loss_mask)
        turns = [m["content"] for m in ep.messages if m["role"] == "assistant"]
        policy = [(a, b) for a, b, m in segments if m == 1]
        # mask 1 decodes to exactly the model's turns
        assert [tok.decode(ep.response_ids[a:b], skip_special_tokens=True) for a, b in policy] == turns
        # mask 0: the prompt, then exactly the rendered observations (tool output / env messages)
        assert tok.decode(ep.prompt_ids) == tok.apply_chat_template(ep.messages[:2], tokenize=False,
                                                                    add_generation_prompt=True)
        observed = [tok.decode(ep.response_ids[a:b]) for a, b, m in segments if m == 0]
        for text, obs in zip(observed, _observations_between(ep.messages), strict=False):
            shown = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in obs)
            assert text in ("<|im_end|>\n" + shown + "<|im_start|>assistant\n",
                            "\n" + shown + "<|im_start|>assistant\n")
        assert ep.messages[3]["role"] == "tool" and ep.messages[3]["content"] in observed[0]
        # model turns (after the first): the ids the engine sampled, with their log-probs
        for a, b in policy[1:]:
            sampled = recording.sampled[tuple(ep.prompt_ids + ep.response_ids[:a])]
            assert (ep.response_ids[a:b], ep.logprobs[a:b]) in [(g.ids, g.logprobs) for g in sampled]
        _check_fresh_logprobs(engine, ep, policy[1:])
        assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask, strict=True) if m == 0)


def _check_fresh_logprobs(engine: HFEngine, ep, spans) -> None:
    with torch.no_grad():
        logits = engine.model(torch.tensor([ep.input_ids])).logits[0].float()  # [P + R, V]
    logp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    targets = torch.tensor(ep.input_ids[1:])  # position t predicts token t + 1
    fresh = logp[:-1].gather(-1, targets[:, None]).squeeze(-1)[len(ep.prompt_ids) - 1:]  # [R]
    for a, b in spans:
        assert torch.allclose(fresh[a:b], torch.tensor(ep.logprobs[a:b]), atol=1e-4, rtol=0)


def test_group_members_fork_the_set_up_session(engine: HFEngine) -> None:
    class Agent:
        def act(self, states, params):
            tok = engine.tokenizer
            texts = []
            for s in states:
                if s.turn == 0:  # sample 0 changes its copy of the state; the others must not see it
                    texts.append(s.parser.format_call("secret = 0\nprint(secret)" if s.sample == 0
                                                      else "print(secret + 1)"))
                else:
                    texts.append(s.parser.format_answer(s.messages[-1]["content"].strip()))
            return [Generation(tok.encode(t), [0.0] * len(tok.encode(t)), "stop", t) for t in texts]

    with RolloutRunner(Agent(), engine.tokenizer, group_size=4, keep_messages=True) as runner:
        episodes = runner.run([TaskRequest(STATE, 0, "train")])
    assert len({e.group_id for e in episodes}) == 1
    assert [e.messages[3]["content"] for e in episodes] == ["0", "42", "42", "42"]
    assert [e.success for e in episodes] == [False, True, True, True]


def test_failures_are_recorded_not_raised(engine: HFEngine) -> None:
    tok = engine.tokenizer
    sampling = SamplingParams(temperature=1.0, max_tokens=8, seed=1)
    flaky = Recording(engine, fail_rows={0})
    with RolloutRunner(flaky, tok, group_size=3, sampling=sampling, env_kwargs={"max_turns": 2},
                       batch_fraction=1.0, max_wait_s=5) as runner:
        episodes = runner.run([TaskRequest(ARITH, 0, "train")])
    assert [e.finish_reason == "error" for e in episodes].count(True) == 1
    failed = next(e for e in episodes if e.finish_reason == "error")
    assert "out of memory on purpose" in failed.error and not failed.trainable
    assert all(e.finish_reason == "max_turns" for e in episodes if e is not failed)

    crashing = Recording(engine, raise_call=1)
    with RolloutRunner(crashing, tok, group_size=2, sampling=sampling) as runner:
        episodes = runner.run([TaskRequest(ARITH, 0, "train")])
    assert all(e.finish_reason == "error" and "engine crashed on purpose" in e.error for e in episodes)

    class Boom:
        def act(self, states, params):
            t = states[0].parser.format_answer("boom")
            return [Generation(tok.encode(t), [0.0] * len(tok.encode(t)), "stop", t) for _ in states]

    with RolloutRunner(Boom(), tok, group_size=2) as runner:
        episodes = runner.run([TaskRequest(STATE, 0, "train"), TaskRequest(ARITH, 1, "train")])
    assert [e.finish_reason for e in episodes[:2]] == ["error", "error"]
    assert "verifier bug on purpose" in episodes[0].error
    assert [e.finish_reason for e in episodes[2:]] == ["answered", "answered"]  # arith: wrong, scored


def test_context_limit_cuts_the_turn_and_ends_with_length(engine: HFEngine) -> None:
    tok = engine.tokenizer
    recording = Recording(engine)
    messages = registry.make(ARITH, split="train").reset(options={"index": 0})[0]
    limit = len(ChatRenderer(tok).prompt_ids(messages)) + 10  # room for 10 of the turn's 200 tokens
    runner = RolloutRunner(recording, tok, sampling=SamplingParams(temperature=1.0, max_tokens=200, seed=2),
                           max_context=limit)
    ep = runner.run([TaskRequest(ARITH, 0, "train")])[0]
    runner.close()
    assert ep.finish_reason == "length" and ep.truncated and ep.reward == 0.0
    assert len(ep.input_ids) == limit
    sampled = recording.sampled[tuple(ep.prompt_ids)][0]
    assert len(sampled.ids) > len(ep.response_ids) == 10 and ep.response_ids == sampled.ids[:10]


def test_an_observation_past_the_context_is_cut_there_and_ends_with_length(engine: HFEngine) -> None:
    """A program printing ~4,000 characters in a 300-token context: before, the Episode kept the whole
    rendered output (thousands of ids past the context, fed to the learner and the prefix cache)."""
    tok = engine.tokenizer

    class LongPrint:
        def act(self, states, params):
            text = "```python\nprint('ab ' * 3000)\n```"
            ids = tok.encode(text)
            return [Generation(ids, [-0.5] * len(ids), "stop", text) for _ in states]

    limit = 300
    with RolloutRunner(LongPrint(), tok, max_context=limit, keep_messages=True) as runner:
        ep = runner.run([TaskRequest(ARITH, 0, "train")])[0]
    with RolloutRunner(LongPrint(), tok, keep_messages=True) as runner:
        free = runner.run([TaskRequest(ARITH, 0, "train")])[0]
    assert len(free.input_ids) > 2 * limit  # without the limit the output is rendered whole
    assert ep.finish_reason == "length" and ep.truncated and ep.reward == 0.0
    assert len(ep.input_ids) == limit and len(ep.loss_mask) == len(ep.logprobs) == len(ep.response_ids)
    assert ep.input_ids == free.input_ids[:limit] and ep.loss_mask == free.loss_mask[:len(ep.loss_mask)]
    assert "ab ab" in ep.messages[-1]["content"]  # the message history keeps the text


def test_max_response_tokens_caps_the_policy_tokens_over_all_turns(engine: HFEngine) -> None:
    """A length stage's cap: the episode's sampled tokens (all turns) stop at the cap, finish 'length'."""
    tok = engine.tokenizer
    sampling = SamplingParams(temperature=1.0, max_tokens=8, seed=4)
    requests = [TaskRequest(ARITH, i, "train") for i in range(3)]
    free = RolloutRunner(engine, tok, group_size=2, sampling=sampling, env_kwargs={"max_turns": 4})
    capped = RolloutRunner(engine, tok, group_size=2, sampling=sampling, env_kwargs={"max_turns": 4},
                           max_response_tokens=5)
    try:
        loose, tight = free.run(requests), capped.run(requests)
    finally:
        free.close()
        capped.close()
    assert max(ep.num_policy_tokens for ep in loose) > 5  # without the cap the episodes run longer
    assert all(ep.num_policy_tokens <= 5 for ep in tight)
    hit = [ep for ep in tight if ep.num_policy_tokens == 5]
    assert hit and all(ep.finish_reason == "length" and ep.truncated for ep in hit)
    with pytest.raises(ValueError, match="max_response_tokens must be >= 1"):
        RolloutRunner(engine, tok, max_response_tokens=0)


def test_live_episodes_default_to_twice_the_engines_batch(engine: HFEngine) -> None:
    """An engine that computes fixed batches one after another (max_batch_size 2 here) keeps 4 episodes
    alive by default: its calls never see more prompts, while an explicit max_inflight admits all 8 at
    once. (More live episodes only wait: each one's wall-clock limit would count the others' turns.)"""
    small = HFEngine(engine.model, engine.tokenizer, max_batch_size=2)
    calls: list[int] = []
    real_generate = small.generate

    def recording(prompts, params):
        calls.append(len(prompts))
        return real_generate(prompts, params)

    small.generate = recording  # type: ignore[method-assign]
    sampling = SamplingParams(temperature=1.0, max_tokens=4, seed=0)
    requests = [TaskRequest(ARITH, i, "train") for i in range(4)]
    with RolloutRunner(small, small.tokenizer, group_size=2, sampling=sampling,
                       env_kwargs={"max_turns": 2}) as runner:
        assert runner.max_inflight == 4
        bounded = runner.run(requests)
    assert len(bounded) == 8 and max(calls) == 4
    calls.clear()
    with RolloutRunner(small, small.tokenizer, group_size=2, sampling=sampling, env_kwargs={"max_turns": 2},
                       max_inflight=256) as runner:
        runner.run(requests)
    assert max(calls) == 8
    # an engine without a fixed batch (vLLM, a server) keeps the old bound
    assert RolloutRunner(Recording(engine), engine.tokenizer).max_inflight == 256
