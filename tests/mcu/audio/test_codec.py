"""Encoding profiles: the thin profile is smaller and carries in-band FEC (LBRR)."""

from __future__ import annotations

import ctypes
import glob
import os

import av
import pytest

from mcu.audio import (
    FIBRE,
    THIN,
    AudioMixer,
    LibopusDecoder,
    OpusEncoder,
    Profile,
    libopus,
    opus_has_lbrr,
)
from mcu.audio.codec import CodecError, opus_toc

from tests.mcu.audio.helpers import feed, speech_like


def _bundled_libopus():
    libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    found = glob.glob(os.path.join(libs, "libopus*")) or glob.glob("/usr/lib/*/libopus.so.0")
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    return lib if hasattr(lib, "opus_packet_has_lbrr") else None


@pytest.fixture(scope="module")
def mixed_packets():
    m = AudioMixer(max_speakers=3)
    fibre, thin = m.listener("xa-f", "fibre"), m.listener("xa-t", "thin")
    feed(m, range(50))
    return [p for _, p in fibre.packets], [p for _, p in thin.packets]


def test_thin_packets_are_smaller_and_carry_fec(mixed_packets):
    fibre, thin = mixed_packets
    assert len(thin) == len(fibre) == 50
    mean = lambda ps: sum(map(len, ps)) / len(ps)  # noqa: E731
    assert mean(thin) < 0.8 * mean(fibre)  # continuous tones: VBR's worst case
    steady = thin[5:]
    assert sum(opus_has_lbrr(p) for p in steady) >= 0.8 * len(steady)
    assert {opus_toc(p)[0] for p in steady} <= {"silk", "hybrid"}
    assert not any(opus_has_lbrr(p) for p in fibre)


def test_thin_profile_on_speech_like_audio_stays_low_rate_with_fec():
    pcm = speech_like()
    rates, lbrr = {}, 0
    for profile in (FIBRE, THIN):
        enc = OpusEncoder(profile)
        pkts = [enc.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(pcm.size // 960)]
        rates[profile.name] = sum(map(len, pkts)) * 8 / (pcm.size / 48000)
        if profile is THIN:
            lbrr = sum(opus_has_lbrr(p) for p in pkts) / len(pkts)
    assert rates["thin"] <= 24000 and rates["thin"] < 0.5 * rates["fibre"], rates
    assert lbrr > 0.3  # about the voiced share of the signal


def test_lbrr_reader_agrees_with_libopus(mixed_packets):
    lib = _bundled_libopus()
    if lib is None:
        pytest.skip("no libopus >= 1.5 library to compare with")
    for p in mixed_packets[0] + mixed_packets[1]:
        assert opus_has_lbrr(p) == bool(lib.opus_packet_has_lbrr(p, len(p)))


def test_fec_follows_the_profile_option():
    import numpy as np

    pcm = (0.3 * np.sin(2 * np.pi * 300 * np.arange(960) / 48000)).astype(np.float32)
    for profile, expect in ((THIN, True), (Profile("thin-nofec", 20000), False)):
        enc = OpusEncoder(profile)
        pkts = [enc.encode(pcm) for _ in range(20)]
        assert any(opus_has_lbrr(p) for p in pkts[2:]) is expect, profile.name
    assert FIBRE.options().get("fec") is None and THIN.options()["fec"] == "1"


def test_unknown_encoder_option_is_refused():
    with pytest.raises(CodecError, match="ignored options"):
        OpusEncoder(Profile("bad", 20000, extra={"no_such_option": "1"}))


def test_receiver_recovers_a_lost_thin_packet_from_fec_better_than_plc():
    """What a commune's decoder does (and the mixer, for uplinks): packet k is lost, the LBRR
    in packet k+1 rebuilds frame k; compared with plain PLC against the loss-free decode."""
    import numpy as np

    if not libopus.available():
        pytest.skip("libopus not loadable")
    pcm = speech_like(1.0)
    enc = OpusEncoder(THIN)
    pkts = [enc.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(50)]

    def decode(lost: int | None, use_fec: bool) -> np.ndarray:
        dec = LibopusDecoder()
        out = [
            dec.conceal(960, pkts[k + 1] if use_fec else None) if k == lost else dec.decode(p)
            for k, p in enumerate(pkts)
        ]
        assert dec.fec_frames == int(use_fec and lost is not None)
        dec.close()
        return np.concatenate(out)

    clean = decode(None, False)
    losses = [k for k in range(5, 49, 3) if opus_has_lbrr(pkts[k + 1])]
    assert len(losses) >= 5
    err = {True: 0.0, False: 0.0}
    for k in losses:
        ref = clean[k * 960 : (k + 2) * 960]  # the lost frame and the one after
        for use_fec in err:
            err[use_fec] += float(np.mean((decode(k, use_fec)[k * 960 : (k + 2) * 960] - ref) ** 2))
    assert err[True] < 0.5 * err[False], err  # measured: about 0.25
