"""trainers/report: what a run leaves behind — metric names, the metrics log and sinks, the HTML report
and its plots.

Room rule: imports nothing else from `toolgym.trainers`, so a report can be built from a run folder
alone.
"""
