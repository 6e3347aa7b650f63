"""Fixtures of the node component tests: a throwaway consortium of four nodes, wired in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from node_fakes import Cluster

from ledger.testing import Throwaway, throwaway_consortium


@pytest.fixture(scope="session")
def four() -> Throwaway:
    """Four department nodes and a gateway (fresh keys once per test session)."""
    return throwaway_consortium(nodes=4)


@pytest.fixture
def cluster(four: Throwaway, tmp_path) -> Iterator[Cluster]:
    """No node yet: each test adds the ones it needs (``cluster.add(name)``)."""
    c = Cluster(t=four, root=tmp_path)
    yield c
    c.close()
