"""Jitter buffer ordering, bounds, late packets, concealment and idle; speaker selection."""

from __future__ import annotations

from mcu.audio import CONCEAL, JitterBuffer, Packet, SpeakerSelector


def pkt(seq: int) -> Packet:
    return Packet(seq & 0xFFFF, seq * 960, bytes([seq & 0xFF]), 30)


def seqs(items) -> list:
    return [i.seq if isinstance(i, Packet) else i for i in items]


def test_reorders_within_the_buffer_and_waits_for_prefill():
    jb = JitterBuffer(prefill=3)
    jb.push(pkt(2))
    jb.push(pkt(1))
    assert jb.pop() is None  # still prefilling
    jb.push(pkt(0))
    assert seqs(jb.pop() for _ in range(3)) == [0, 1, 2]


def test_sequence_wraps_around():
    jb = JitterBuffer(prefill=2)
    for s in (65534, 65535, 0, 1):
        jb.push(pkt(s))
    assert seqs(jb.pop() for _ in range(4)) == [65534, 65535, 0, 1]


def test_gap_is_concealed_and_the_late_packet_dropped():
    jb = JitterBuffer(prefill=1)
    jb.push(pkt(0))
    jb.push(pkt(2))
    assert seqs(jb.pop() for _ in range(2)) == [0, CONCEAL]
    assert jb.push(pkt(1)) is False  # its tick has passed
    assert jb.push(pkt(2)) is False  # duplicate
    assert seqs([jb.pop()]) == [2]
    assert (jb.stats.concealed, jb.stats.late, jb.stats.duplicate) == (1, 1, 1)


def test_underrun_is_concealed_briefly_then_the_source_goes_idle_and_restarts():
    jb = JitterBuffer(prefill=1, max_conceal=2)
    jb.push(pkt(0))
    assert seqs(jb.pop() for _ in range(5)) == [0, CONCEAL, CONCEAL, None, None]
    assert not jb.playing and jb.stats.concealed == 2
    assert jb.push(pkt(0)) is False  # an old packet is still late while idle
    jb.push(pkt(1))  # the sender paused and goes on with the next sequence number
    assert seqs([jb.pop()]) == [1]
    assert jb.stats.restarts == 2


def test_bounded_buffer_drops_the_oldest():
    jb = JitterBuffer(prefill=2, capacity=4)
    for s in range(7):
        jb.push(pkt(s))
    assert len(jb) == 4 and jb.stats.overflow == 3
    assert seqs([jb.pop()]) == [3]


def test_sequence_jump_resynchronises_instead_of_concealing_the_distance():
    jb = JitterBuffer(prefill=1)
    jb.push(pkt(100))
    assert seqs([jb.pop()]) == [100]
    jb.push(pkt(5000))  # forward jump
    jb.push(pkt(5001))
    assert seqs(jb.pop() for _ in range(2)) == [5000, 5001]
    jb.push(pkt(7))  # the sender restarted far behind
    assert seqs([jb.pop()]) == [7]
    assert jb.stats.resyncs == 2 and jb.stats.concealed == 0


def test_a_run_of_late_packets_means_the_sender_restarted_close_behind():
    jb = JitterBuffer(prefill=1, capacity=4)
    for s in range(500, 503):
        jb.push(pkt(s))
        jb.pop()
    accepted = [jb.push(pkt(s)) for s in range(400, 406)]
    assert accepted == [False] * 4 + [True, True] and jb.stats.late == 4
    assert seqs(jb.pop() for _ in range(2)) == [404, 405]


def test_selector_picks_the_loudest_and_holds():
    sel = SpeakerSelector(max_speakers=2, hold_ticks=10, margin=6)
    levels = {"a": 20, "b": 30, "c": 40, "d": 127}
    assert sorted(sel.update(levels, 0)) == ["a", "b"]
    # b pauses briefly: held; c (louder than b now) must wait for b's hold to expire
    for t in range(1, 6):
        assert sorted(sel.update({**levels, "b": 127}, t)) == ["a", "b"]
    for t in range(6, 40):
        current = sel.update({**levels, "b": 127}, t)
    assert sorted(current) == ["a", "c"]
    changes = sel.changes
    for t in range(40, 60):  # alternating loudness within the margin: no flapping
        sel.update({"a": 20, "b": 38 if t % 2 else 42, "c": 40}, t)
    assert sel.changes == changes
