"""Shared pytest configuration: markers that skip when their resource is missing."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = _has_cuda()
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none on this machine"))
        if "e2b" in item.keywords and not os.environ.get("E2B_API_KEY"):
            item.add_marker(pytest.mark.skip(reason="needs E2B_API_KEY (and internet) for the E2B cloud"))
        if "bwrap" in item.keywords and shutil.which("bwrap") is None:
            item.add_marker(pytest.mark.skip(reason="needs bubblewrap: apt-get install -y bubblewrap"))


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) per test module; a run inside it reuses it instead of starting its own."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ctrl_c_reaches_python():
    """SIGINT delivered as Python delivers it to a foreground process, whatever this one inherited.

    A shell starts background jobs (``pytest ... &``) with SIGINT ignored, and Python keeps that
    disposition; the tests that press Ctrl-C need the interactive one to see what a user sees.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
