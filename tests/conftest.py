import os
import shutil
import sys
import tempfile

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests import their shared helpers module
# Two pytest workers share the machine's cores (README's test command runs `-n 2`): one torch
# thread each; a single process keeps two.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))
# Parked runs of this test process (and of the app servers it starts) go to a folder of its own,
# not the user's: workers and a developer's open app cannot see or evict each other's runs.
PARK_DIR = tempfile.mkdtemp(prefix="deepr-park-tests-")
os.environ["DEEPR_PARK_DIR"] = PARK_DIR


def pytest_configure(config):
    # CI runs everything; `-m "not slow"` gives a quick loop while editing
    config.addinivalue_line("markers", "slow: takes seconds (processes, long runs, statistics)")


def pytest_unconfigure(config):
    shutil.rmtree(PARK_DIR, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)   # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
    # Under `-n 2 --dist loadgroup` a module's browser tests stay on one worker (they share the
    # module's server and chromium) and come first: the long units start early, the short
    # ones fill in after them.
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.xdist_group(f"browser-{item.module.__name__}"))
    items.sort(key=lambda item: "browser" not in item.keywords)
