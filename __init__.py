"""The repository root as the `toolgym` package, for a clone named `toolgym/` imported from its parent.

`git clone .../toolgym` makes a folder `toolgym/`; Python started in the folder above it (a notebook
in your home, `python -m pytest toolgym/tests`) finds that folder first on `sys.path`. Without this
file it would be an empty namespace package that shadows the installed toolgym (`toolgym.register`
missing). With it, the clone itself is the package, laid out as pyproject.toml's package-dir maps it:
`toolgym.cli`, `toolgym.commands`, ... from `toolgym/`, `toolgym.envs`, `toolgym.agents`, ... from the
root. Never part of the wheel (no package maps to the root); an installed toolgym never reads it.
"""

from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent
__path__ = [str(_ROOT / "toolgym"), str(_ROOT)]  # the mapped folders, in pyproject.toml's order
_INIT = _ROOT / "toolgym" / "__init__.py"
exec(compile(_INIT.read_text(encoding="utf-8"), str(_INIT), "exec"))  # the package's own __init__
