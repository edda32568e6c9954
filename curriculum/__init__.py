"""toolgym.curriculum: success statistics, improvement-potential scores, stage schedulers, filters.

Works on task ids and outcomes only; imports only `toolgym.envs`.

    scheduler = make_scheduler("potential", units, steps_per_stage=100)   # or "uniform", ...
    scheduler.probe(probe_fn, n=20, modes=("text", "code", "free"))      # optional, recommended
    requests = scheduler.next_batch(n, rng); ...; scheduler.update(outcomes)
    kept = GroupFilter(max_attempts=3).fill(sample_groups, n_groups).kept
"""

from toolgym._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # units
    "Unit": "toolgym.curriculum.units",
    "UnitSet": "toolgym.curriculum.units",
    "parse_unit": "toolgym.curriculum.units",
    "unit_name": "toolgym.curriculum.units",
    "expand_units": "toolgym.curriculum.units",
    "check_train_split": "toolgym.curriculum.units",
    "unit_requests": "toolgym.curriculum.units",
    # statistics and potential
    "SuccessStats": "toolgym.curriculum.stats",
    "UnitSummary": "toolgym.curriculum.stats",
    "improvement_potential": "toolgym.curriculum.potential",
    "run_probe": "toolgym.curriculum.potential",
    "PROMPT_MODES": "toolgym.curriculum.potential",
    "ProbeFn": "toolgym.curriculum.potential",
    # schedulers
    "Scheduler": "toolgym.curriculum.base",
    "make_scheduler": "toolgym.curriculum.registry",
    "register_scheduler": "toolgym.curriculum.registry",
    "list_schedulers": "toolgym.curriculum.registry",
    "get_scheduler": "toolgym.curriculum.registry",
    "scheduler_options": "toolgym.curriculum.registry",
    "DEFAULT_SCHEDULER": "toolgym.curriculum.registry",
    "UniformScheduler": "toolgym.curriculum.scheduler_basic",
    "DifficultyBandScheduler": "toolgym.curriculum.scheduler_basic",
    "SolvedDropScheduler": "toolgym.curriculum.scheduler_basic",
    "PotentialScheduler": "toolgym.curriculum.scheduler_potential",
    "SequenceScheduler": "toolgym.curriculum.scheduler_potential",
    "Stage": "toolgym.curriculum.scheduler_potential",
    # batch filters
    "GroupFilter": "toolgym.curriculum.filters",
    "FilterReport": "toolgym.curriculum.filters",
    "FilterResult": "toolgym.curriculum.filters",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
