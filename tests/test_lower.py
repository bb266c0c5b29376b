"""Lowering decisions that are not visible in single-op tests."""

from __future__ import annotations

import numpy as np
import pytest

from tinysplit.backends.lower import coalesce_transpose


@pytest.mark.parametrize("seed", range(40))
def test_coalesced_transpose_moves_the_same_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 7))
    shape = tuple(int(d) for d in rng.choice([1, 2, 3, 4], size=rank))
    perm = tuple(int(p) for p in rng.permutation(rank))
    dims, order = coalesce_transpose(shape, perm)
    x = rng.standard_normal(shape)
    assert np.array_equal(x.transpose(perm).reshape(-1), x.reshape(dims).transpose(order).reshape(-1))
    assert len(dims) <= rank


def test_channel_shuffle_fits_the_rank4_runtime() -> None:
    dims, order = coalesce_transpose((1, 4, 28, 56, 56), (0, 2, 1, 3, 4))
    assert dims == (4, 28, 3136) and order == (1, 0, 2)
