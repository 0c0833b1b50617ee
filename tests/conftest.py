import os

import pytest
import torch

# Tests run on CPU with deterministic, small thread pools so that the 2-core CI box is not oversubscribed.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes; excluded by default, run with -m slow")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small motion dataset (two synthetic clips) for env tests that must not depend on the shipped set."""
    from _env_helpers import write_dataset

    return write_dataset(tmp_path_factory.mktemp("motions"))
