"""Partitions are computed once per machine and read back identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pot_flower import datasets

pytestmark = pytest.mark.skipif(
    not datasets.local_files_present(), reason="apt-get install dataset-fashion-mnist"
)


def test_cached_partitions_are_the_partitioners_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path))
    datasets._partition_indices.cache_clear()
    first = datasets._partition_indices(7, 0.5, 42, datasets.DATA_DIR)
    (stored,) = tmp_path.iterdir()
    partitioner = datasets._partitioner(7, 0.5, 42, datasets.DATA_DIR)
    datasets._partition_indices.cache_clear()  # a new process: read from disk
    again = datasets._partition_indices(7, 0.5, 42, datasets.DATA_DIR)
    for i in range(7):
        expected = np.asarray(partitioner.load_partition(i)[:]["index"])
        assert (first[i] == expected).all() and (again[i] == expected).all()
    # Other settings are other files; a damaged file is computed again.
    stored.write_bytes(b"not an npz")
    datasets._partition_indices.cache_clear()
    assert all(
        (
            datasets._partition_indices(7, 0.5, 42, datasets.DATA_DIR)[i] == first[i]
        ).all()
        for i in range(7)
    )
    with pytest.raises(ValueError, match="partition-id 7"):
        datasets.load_partition(7, 7, alpha=0.5, seed=42)
    datasets._partition_indices.cache_clear()


def test_an_unwritable_cache_still_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("where the cache directory should be")
    monkeypatch.setenv(datasets.CACHE_ENV, str(blocker))
    datasets._partition_indices.cache_clear()
    x, y = datasets.load_partition(1, 5, alpha=0.5, seed=42)
    assert len(x) == len(y) > 0
    datasets._partition_indices.cache_clear()
