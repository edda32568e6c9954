"""toolgym: train and evaluate LLM agents that reason with a code interpreter, by RL.

The public face: registration and construction of task environments. Everything else is in the
subpackages (`toolgym.envs`, `toolgym.tasks`, `toolgym.agents`, `toolgym.curriculum`,
`toolgym.trainers`), imported lazily so that `import toolgym` stays fast.

Importing toolgym registers every task id -- toolgym's own and those of installed `toolgym.tasks`
entry points -- with Gymnasium, so that `import toolgym; gymnasium.make("toolgym/arith-v0")` works as
it does for any Gymnasium environment package (registration imports no torch, ray or transformers).
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


def _register_with_gymnasium() -> None:
    from toolgym.envs.registry import load_plugins

    load_plugins()


_register_with_gymnasium()
