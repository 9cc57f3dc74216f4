"""Fixtures of the multi-process tests."""

from __future__ import annotations

import pytest

from tests.multiprocess._procs import Processes


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()
