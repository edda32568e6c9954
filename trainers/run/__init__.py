"""trainers/run: the training loop — driver, run state, step stages, rollout pool and workers, the
learner group (Ray placement), checkpoints, the SFT warm start, the quickstart, the adaptive entropy
controller (per-step driver state).

Room rule: may import every other room; the only room that imports Ray.
"""
