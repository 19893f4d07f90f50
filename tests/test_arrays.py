import pickle

import numpy as np
import pytest

from turnfusion.arrays import NpyRows


@pytest.mark.parametrize("array", [np.arange(10, dtype=np.int16), np.arange(24, dtype=np.float16).reshape(6, 4)])
def test_row_ranges_read_from_disk_equal_the_array(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    rows = NpyRows(tmp_path / "a.npy")
    assert len(rows) == len(array) and rows.nbytes == array.nbytes and rows.dtype == array.dtype
    for a, b in [(0, len(array)), (2, 5), (4, 4), (len(array) - 1, len(array) + 3)]:
        assert np.array_equal(rows[a:b], array[a:b])
    again = pickle.loads(pickle.dumps(rows))  # as a DataLoader worker gets it: it opens the file itself
    assert np.array_equal(again[1:3], array[1:3])
    with pytest.raises(ValueError, match="contiguous"):
        rows[::2]
