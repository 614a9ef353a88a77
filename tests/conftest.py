"""Shared test setup: no hub access, and a clean plugin registry for every test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from fasbench import plugins  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_registries():
    """Each test discovers plugins anew (tests add throwaway plugins to sys.path)."""
    plugins.forget_plugins()
    yield
    plugins.forget_plugins()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and two spinning threads stall on a shared 2-core machine.

    Use it per module: ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")
