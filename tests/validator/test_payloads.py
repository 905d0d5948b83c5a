"""Payload storage: streamed uploads, quotas, and what may be collected when."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pot_flower.validator.payloads import PayloadError, PayloadStore, Retention


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_a_streamed_upload_lands_only_if_it_is_what_it_claimed(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path)
    data = b"x" * 3000
    writer = store.writer(digest(data), len(data))
    writer.write(data[:1000])
    writer.write(data[1000:])
    writer.commit()
    assert store[digest(data)] == data
    for size, sent in [(3000, b"y" * 3000), (3000, b"x" * 2000), (10, b"x" * 3000)]:
        writer = store.writer(digest(b"z"), size)
        with pytest.raises(PayloadError):
            writer.write(sent)
            writer.commit()
        writer.abort()
    assert list(store) == [digest(data)]
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left behind


def test_quotas_are_charged_on_reservation_and_refunded_on_failure(
    tmp_path: Path,
) -> None:
    retention = Retention(PayloadStore(tmp_path), quota_bytes=100, store_bytes=150)
    assert retention.reserve("a", digest(b"1"), 60) is None
    assert "quota" in (retention.reserve("a", digest(b"2"), 60) or "")
    assert retention.reserve("b", digest(b"3"), 60) is None
    assert "full" in (retention.reserve("c", digest(b"4"), 60) or "")
    retention.settle("b", digest(b"3"), 60, stored=False)  # the upload failed
    assert retention.charged("b") == 0
    assert retention.reserve("c", digest(b"4"), 60) is None


def test_consumed_payloads_are_collected_unless_promised_again(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path)
    retention = Retention(store, quota_bytes=1000, store_bytes=1000)
    old, again = (store.put(b"old"), store.put(b"again"))
    for d, data in ((old, b"old"), (again, b"again")):
        assert retention.reserve("c", d, len(data)) is None
        retention.settle("c", d, len(data), stored=True)
    retention.promised([old, again])
    retention.consumed([old, again], seq=5)
    retention.promised([again])  # a newer batch names it: a receipt promised it
    assert retention.collect(below=4) == 0  # not a window past seq 5 yet
    assert retention.collect(below=5) == 1
    assert old not in store and again in store
    assert retention.charged("c") == len(b"again")
    retention.consumed([again], seq=9)
    assert retention.collect(below=9) == 1 and again not in store
    assert retention.charged("c") == 0


def test_start_up_sweep_keeps_what_pending_requests_name(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path)
    keep, stale = store.put(b"keep"), store.put(b"stale")
    retention = Retention(store, quota_bytes=1000, store_bytes=1000)
    assert retention.sweep(older_than_s=-1, keep={keep}) == 1
    assert keep in store and stale not in store
