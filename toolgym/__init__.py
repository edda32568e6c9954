"""toolgym: train and evaluate LLM agents that reason with a code interpreter, by RL.

The public face: registration and construction of task environments. Everything else is in the
subpackages (`toolgym.envs`, `toolgym.tasks`, `toolgym.agents`, `toolgym.curriculum`,
`toolgym.trainers`), imported lazily so that `import toolgym` stays fast.
"""

from toolgym._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "register": "toolgym.envs.registry",
    "make": "toolgym.envs.registry",
    "list_tasks": "toolgym.envs.registry",
    "list_suites": "toolgym.envs.registry",
}
__all__ = ["__version__", *_EXPORTS]
__getattr__ = lazy_exports(__name__, _EXPORTS)
