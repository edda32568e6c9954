"""trainers/algo: the algorithm as maths — advantages, the loss API, one file per policy loss, the extra
terms (SFT, entropy, KL), the objective that sums them, and the loss config.

Room rule: imports nothing else from `toolgym.trainers` (torch and the ground floor only), so that the
objective can be read, tested and reused without the trainer around it.
"""
