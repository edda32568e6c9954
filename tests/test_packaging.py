"""The wheel contains every subpackage, and nothing is installed as a top-level `envs`/`tasks`/...

With `[tool.setuptools.package-dir]` mapping, a nested package missing from `packages` is silently
left out of the wheel while an editable install still imports it; these tests build the real wheel.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"toolgym": "toolgym", "toolgym.envs": "envs", "toolgym.tasks": "tasks",
          "toolgym.agents": "agents", "toolgym.curriculum": "curriculum", "toolgym.trainers": "trainers"}


def discovered_packages() -> set[str]:
    """Every folder with an __init__.py under the mapped folders, as import names."""
    found = set()
    for package, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    return found


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == discovered_packages()
    assert set(config["package-dir"]) == discovered_packages()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("toolgym-*.whl")
    return whl


def test_wheel_contains_every_subpackage(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages_in_wheel = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert discovered_packages() <= packages_in_wheel
    top_level = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"toolgym"}


def test_wheel_installs_and_imports_in_a_scratch_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = env_dir / "wheel-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import toolgym, toolgym.envs, toolgym.envs.sandbox;"
            "import importlib.util as u;"
            "assert toolgym.envs.__file__.startswith(sys.argv[1]), toolgym.envs.__file__;"
            "assert all(u.find_spec(m) is None or not u.find_spec(m).origin.startswith(sys.argv[1])"
            " for m in ('envs', 'agents', 'tasks', 'curriculum', 'trainers')); print('ok')")
    out = subprocess.run([str(python), "-c", code, str(target)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_editable_install_imports_mapped_packages() -> None:
    import toolgym.envs

    assert Path(toolgym.envs.__file__).resolve().parent == ROOT / "envs"


def test_a_clone_named_toolgym_is_the_package_from_its_parent_folder(tmp_path: Path) -> None:
    """`git clone .../toolgym` then Python in the folder above: the clone must not shadow toolgym as an
    empty namespace package (it did: `toolgym.register` missing, pytest could not collect)."""
    (tmp_path / "toolgym").symlink_to(ROOT, target_is_directory=True)
    code = ("import gymnasium, toolgym, toolgym.cli, toolgym.trainers.algo\n"
            "assert callable(toolgym.register) and toolgym.__version__\n"
            "print(type(gymnasium.make('toolgym/arith-v0').unwrapped).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ToolEnv", out.stderr
    collect = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                              "no:cacheprovider", "toolgym/tests/test_tasks_arith.py"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert collect.returncode == 0 and "test_tasks_arith.py::" in collect.stdout, collect.stderr
