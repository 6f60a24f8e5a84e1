import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests import their shared helpers module
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config):
    # CI runs everything; `-m "not slow"` gives a quick loop while editing
    config.addinivalue_line("markers", "slow: takes seconds (processes, long runs, statistics)")


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
