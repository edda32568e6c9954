"""Episode records: JSONL round trip of real episodes (teacher on arith, with messages), shape checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolgym.agents.episode import Episode, read_jsonl, write_jsonl
from toolgym.agents.policies import TeacherAgent
from toolgym.agents.rollout import RolloutRunner
from toolgym.agents.tiny import cached_tiny_model
from toolgym.envs.types import TaskRequest


def test_jsonl_round_trip_of_real_episodes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cached_tiny_model(tmp_path_factory.getbasetemp() / "toolgym-cache"))
    with RolloutRunner(TeacherAgent(tok), tok, group_size=2, keep_messages=True) as runner:
        episodes = runner.run([TaskRequest("toolgym/arith-v0", i, "train") for i in range(2)])
    failed = Episode("toolgym/arith-v0", 9, "train", "g", finish_reason="error", error="boom\nline 2",
                     reward_components={"correctness": 0.0}, timings={"total_s": 0.5})
    episodes.append(failed)
    path = tmp_path / "eps.jsonl"
    assert write_jsonl(episodes, path) == 5
    back = list(read_jsonl(path))
    assert back == episodes  # every field, floats included, survives
    assert all(e.success and e.loss_mask.count(1) > 0 for e in back[:4])
    assert back[4].error == "boom\nline 2" and not back[4].trainable
    assert len(path.read_text().splitlines()) == 5


def test_episode_validates_shapes_and_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one entry per token"):
        Episode("t", 0, "train", "g", response_ids=[1, 2], loss_mask=[1], logprobs=[0.0, 0.0])
    with pytest.raises(ValueError, match="unknown Episode fields"):
        Episode.from_dict({"task_id": "t", "index": 0, "split": "train", "group_id": "g", "oops": 1})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "t"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        list(read_jsonl(bad))


def _ep(finish: str, *, turns: int, calls: int, malformed: int = 0, success: bool = False) -> Episode:
    return Episode("t/x-v0", 0, "heldout", "g", [1], [2], [1], [0.0], finish_reason=finish, turns=turns,
                   tool_calls=calls, format_errors=malformed, success=success)


def test_tool_use_health_counts_the_protocol_failures() -> None:
    from toolgym.agents.episode import tool_use_health

    episodes = [_ep("answered", turns=2, calls=1, success=True),
                _ep("max_turns", turns=4, calls=3, malformed=1),
                _ep("malformed", turns=2, calls=0, malformed=2), _ep("answered", turns=1, calls=0)]
    health = tool_use_health(episodes)
    assert health["parse_fail_rate"] == pytest.approx(3 / 9)  # 3 malformed turns of 9
    assert health["no_tool_frac"] == 0.5 and health["answered_frac"] == 0.5
    assert health["finish_max_turns"] == 0.25 and health["finish_malformed"] == 0.25
    assert health["finish_error"] == 0.0


def test_a_step_without_any_tool_call_is_warned_about() -> None:
    from toolgym.trainers.report.metrics import episode_metrics, no_tool_warning

    silent = episode_metrics([_ep("answered", turns=1, calls=0) for _ in range(4)], rollout_s=1.0)
    assert silent["episode/no_tool_frac"] == 1.0
    assert "none of its 4 episodes made a tool call" in no_tool_warning(7, silent)
    mixed = episode_metrics([_ep("answered", turns=1, calls=0), _ep("answered", turns=2, calls=1)], 1.0)
    assert no_tool_warning(7, mixed) is None


def test_pass_at_k_has_its_standard_error_over_problems() -> None:
    from toolgym.agents.evaluate import summarize

    episodes = [_ep("answered", turns=1, calls=1, success=s) for s in (True, False, True, True)]
    for i, e in enumerate(episodes):
        e.index = i  # four problems, one sample each: scores 1, 0, 1, 1
    out = summarize(episodes, ks=(1,))
    assert out["pass@1"] == 0.75
    assert out["pass@1_stderr"] == pytest.approx((0.25 / 4) ** 0.5)  # sample var 0.25, n = 4
    assert summarize(episodes[:1], ks=(1,))["pass@1_stderr"] is None
