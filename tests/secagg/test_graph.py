from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import SecAggFormatError
from fedchain.secagg.graph import complete_graph, harary_graph, permutation, suggested_degree


def test_complete_graph() -> None:
    g = complete_graph([3, 1, 2])
    assert g.of(1) == (2, 3) and g.holders(2) == (1, 2, 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 80), half=st.integers(1, 10), round_id=st.integers(0, 2**32), seed=st.binary(min_size=32, max_size=32))
def test_harary_graph_is_k_regular_and_symmetric(n: int, half: int, round_id: int, seed: bytes) -> None:
    k = 2 * half
    if k >= n - 1:
        k = 2
    g = harary_graph(range(1, n + 1), k, round_id, seed)
    for i in range(1, n + 1):
        assert len(g.of(i)) == k
        assert i not in g.of(i)
        assert all(i in g.of(j) for j in g.of(i))


def test_graph_is_deterministic_and_depends_on_round_and_seed() -> None:
    nodes = range(1, 101)
    a = harary_graph(nodes, 20, 7, b"s" * 32)
    assert a == harary_graph(nodes, 20, 7, b"s" * 32)
    assert a != harary_graph(nodes, 20, 8, b"s" * 32)
    assert a != harary_graph(nodes, 20, 7, b"t" * 32)


def test_permutation_is_a_permutation() -> None:
    assert sorted(permutation(list(range(1, 51)), 3, b"x" * 32)) == list(range(1, 51))


def test_large_degree_is_the_complete_graph() -> None:
    assert harary_graph([1, 2, 3, 4], 3, 0, bytes(32)) == complete_graph([1, 2, 3, 4])


def test_odd_degree_refused() -> None:
    with pytest.raises(SecAggFormatError, match="even"):
        harary_graph(range(1, 20), 5, 0, bytes(32))


def test_suggested_degree() -> None:
    assert suggested_degree(10) == 9
    assert suggested_degree(100) == 20
    assert suggested_degree(1000) % 2 == 0
