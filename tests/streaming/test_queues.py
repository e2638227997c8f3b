from __future__ import annotations

import threading

from emostream.streaming.queues import DropOldestQueue


def test_drop_oldest_keeps_the_newest_and_counts():
    q: DropOldestQueue[int] = DropOldestQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1 and q.put(4) == 2
    assert q.dropped == 2 and len(q) == 2 and q.high_water == 2
    assert [q.get(0), q.get(0), q.get(0)] == [3, 4, None]


def test_get_wakes_on_put_from_another_thread():
    q: DropOldestQueue[str] = DropOldestQueue(1)
    threading.Timer(0.05, q.put, args=("x",)).start()
    assert q.get(timeout=5) == "x"


def test_put_wait_blocks_until_there_is_room_and_drops_nothing():
    q: DropOldestQueue[int] = DropOldestQueue(1)
    q.put_wait(1)
    threading.Timer(0.2, q.get, args=(0,)).start()  # frees the slot a little later
    q.put_wait(2)  # returns only then
    assert q.get(0) == 2 and q.dropped == 0


def test_best_effort_offers_wait_behind_queued_items_and_replace_each_other():
    q: DropOldestQueue[str] = DropOldestQueue(2)
    assert q.offer("a", "partial-a1") is None
    assert q.offer("a", "partial-a2") == "partial-a1"  # a newer offer for the same stream replaces it
    q.offer("b", "spec-b")
    q.put("final")
    assert len(q) == 1  # offers are not queued items (status depth, drops)
    assert [q.get(0), q.get(0)] == ["final", "partial-a2"]  # finals first, then the oldest offer
    assert q.withdraw("b", "other") is False and q.withdraw("b", "spec-b") is True
    assert q.get(0) is None and q.dropped == 0


def test_an_offer_wakes_a_waiting_worker():
    q: DropOldestQueue[str] = DropOldestQueue(1)
    threading.Timer(0.05, q.offer, args=("s", "partial")).start()
    assert q.get(timeout=5) == "partial"


def test_a_batch_takes_the_queued_finals_first_then_offers_and_never_waits_for_company():
    q: DropOldestQueue[str] = DropOldestQueue(8)
    q.offer("s1", "partial-s1")
    q.put("final-a")
    q.offer("s2", "partial-s2")
    q.put("final-b")
    assert q.backlog() == 4
    assert q.get_batch(3, timeout=0.1) == ["final-a", "final-b", "partial-s1"]
    assert q.get_batch(3, timeout=0.1) == ["partial-s2"]  # alone: nothing else is ready, it does not wait
    assert q.get_batch(3, timeout=0.05) == [] and q.backlog() == 0
