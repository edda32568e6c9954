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
