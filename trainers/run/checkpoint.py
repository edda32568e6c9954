"""Checkpoints: everything needed so that a resumed run takes the same next update as an unbroken one.

Layout of RUN_DIR/checkpoints/step_000012/:
    model/             save_pretrained (safetensors) + tokenizer: loadable by any HF tool or engine
    trainer_state.pt   optimizer, LR schedule, learner counters, RNG states (python, numpy, torch)
    curriculum.json    the scheduler's state_dict()
    driver.json        step, cumulative counters, the driver's own RNG state
    config.yaml        the full TrainConfig of the run
A checkpoint is written to a temporary folder and renamed into place, so a crash mid-save never
leaves a half checkpoint behind; `RUN_DIR/checkpoints/latest` names the newest one.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

CKPT_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    """A loaded checkpoint (the model itself is loaded from `model_dir` by the caller)."""

    path: Path
    step: int
    model_dir: Path
    trainer_state: dict[str, Any]  # learner state + "rng"
    curriculum_state: dict[str, Any]
    driver_state: dict[str, Any]
    config: dict[str, Any]


def save_checkpoint(run_dir: str | Path, step: int, *, model: Any, tokenizer: Any, learner: Any,
                    curriculum_state: dict[str, Any], driver_state: dict[str, Any],
                    config: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step` atomically, point `latest` at it and prune to the newest `keep`."""
    root = Path(run_dir) / CKPT_DIR
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "model").mkdir(parents=True)
    model.save_pretrained(tmp / "model", safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "model")
    torch.save({**learner.state_dict(), "rng": rng_state()}, tmp / "trainer_state.pt")
    (tmp / "curriculum.json").write_text(json.dumps(curriculum_state, indent=1, default=_jsonable))
    (tmp / "driver.json").write_text(json.dumps({**driver_state, "step": step}, indent=1, default=_jsonable))
    (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (root / "latest").write_text(final.name + "\n")
    _prune(root, keep)
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (np.ndarray, tuple, set)):
        return list(obj.tolist() if isinstance(obj, np.ndarray) else obj)
    raise TypeError(f"checkpoint state holds a {type(obj).__name__}, which is not JSON-serialisable")


def _prune(root: Path, keep: int) -> None:
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[: max(0, len(steps) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    root = Path(run_dir) / CKPT_DIR
    pointer = root / "latest"
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if path.is_dir():
            return path
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    return steps[-1] if steps else None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder (or a run directory: its latest checkpoint)."""
    path = Path(path)
    if not (path / "trainer_state.pt").exists():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path} is neither a checkpoint folder nor a run directory with "
                                    f"checkpoints (expected {path}/{CKPT_DIR}/step_NNNNNN/trainer_state.pt)")
        path = found
    driver = json.loads((path / "driver.json").read_text())
    return Checkpoint(
        path=path, step=int(driver["step"]), model_dir=path / "model",
        trainer_state=torch.load(path / "trainer_state.pt", weights_only=False),
        curriculum_state=json.loads((path / "curriculum.json").read_text()),
        driver_state=driver, config=yaml.safe_load((path / "config.yaml").read_text()),
    )
