"""pad_to_multiple: far-end padding so a mesh and a network's downsampling divide the volume."""

from __future__ import annotations

import numpy as np
import pytest

from engines.partition.pad import pad_to_multiple, padded_shape


def test_pads_only_the_far_end_of_the_last_three_axes():
    volume = np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7)
    padded = pad_to_multiple(volume, (4, 3, 8), value=-1)
    assert padded.shape == (2, 8, 6, 8)
    np.testing.assert_array_equal(padded[:, :5, :6, :7], volume)
    assert (padded[:, 5:] == -1).all() and (padded[..., 7:] == -1).all()


def test_returns_the_input_when_already_a_multiple():
    volume = np.zeros((16, 32, 48))
    assert pad_to_multiple(volume, 16) is volume
    assert padded_shape((17, 32, 1), 16) == (32, 32, 16)


def test_bad_multiple_is_refused():
    with pytest.raises(ValueError, match="positive"):
        padded_shape((8, 8, 8), (2, 0, 2))
