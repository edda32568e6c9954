"""trainers/learner: the policy update — the learner, batching into micro-batches, the shared-prefix
forward, torch.distributed helpers.

Room rule: may import `trainers.algo` and `trainers.config`; no Ray here (the learner runs in the
driver or inside a Ray actor that `trainers.run` places).
"""
