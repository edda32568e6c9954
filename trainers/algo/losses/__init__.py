"""trainers/algo/losses: one module per policy loss (ppo_clip, gppo, cispo, gspo).

Every module here is a built-in of the loss registry (`toolgym.trainers.algo.loss_api.LOSSES`), found
by listing this package: a new built-in loss is a new file with `@register_loss("name")`, nothing else.
"""
