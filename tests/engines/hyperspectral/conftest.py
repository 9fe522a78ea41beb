"""A small SYNTHETIC farmland scene shared by the hyperspectral tests (torch on one thread)."""

from __future__ import annotations

import pytest
import torch

from engines.datasets.farmland import make_farmland_scene


@pytest.fixture(scope="session")
def small_scene():
    """48 x 40 x 270 float32 scene with all 11 classes; built once per session."""
    return make_farmland_scene((48, 40), seed=0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
