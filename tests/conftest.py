import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One corpus cache for the whole session: generated data is reused across tests."""
    return tmp_path_factory.mktemp("data")
