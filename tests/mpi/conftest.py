"""MPI test fixtures: one generated tiny county per session (sources in DuckDB), shared by the MPI tests."""

from __future__ import annotations

import pytest

from tests.mpi.county import County, make_county


@pytest.fixture(scope="session")
def county(tmp_path_factory: pytest.TempPathFactory) -> County:
    return make_county(tmp_path_factory.mktemp("mpi_county"))
