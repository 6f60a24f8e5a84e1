import os

import pytest

import sys as _sys
_sys.path.insert(0, __import__("os").path.dirname(__file__))
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
