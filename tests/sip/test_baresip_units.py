"""The baresip harness's own logic, without starting baresip (#14): the config it writes from the
templates, what it reads from baresip's log, and the colour and tone checks the SIP tests rely on."""

from __future__ import annotations

import numpy as np

from tests.sip.meeting import find_colour
from tests.support.baresip import Baresip, colour_matches, mean_colour, tone_peak_hz

LOG = (
    "baresip v1.0.0 Copyright (C) 2010 - 2020 Alfred E. Heggestad et al.\n"
    "srtp: audio: SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)\n"
    "audio: Set audio encoder: PCMU 8000Hz 1ch\n"
    "audio: Set audio decoder: PCMU 8000Hz 1ch\n"
    "srtp: video: SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)\n"
    "room@127.0.0.1: Call established: sip:459365@127.0.0.1:37305\n"
    "[0:00:03] audio=0/0 video=0/0 (bit/s) efps=0.0/0.0    "
    "[0:00:04] audio=64000/63573 video=1600/5477 (bit/s) efps=25.0/24.0    png: wrote /tmp/x/recv-1.png\n"
)


def test_the_config_is_written_from_the_templates(tmp_path):
    room = Baresip(tmp_path / "bs", user="phong", colour=(255, 128, 0), srtp=True, ports=(5072, 4455), fps=10)
    room.write_config()
    config = (tmp_path / "bs" / "config").read_text()
    accounts = (tmp_path / "bs" / "accounts").read_text()
    assert "sip_listen\t\t127.0.0.1:5072" in config and "ctrl_tcp_listen\t\t127.0.0.1:4455" in config
    assert "video_source\t\tavformat,lavfi,color=c=0xff8000:s=320x240:r=10" in config
    assert "video_size\t\t320x240" in config and "module\t\t\tsndfile.so" in config
    assert "$" not in config.replace("$NAMES", "")  # every placeholder filled
    assert accounts.splitlines()[-1] == (
        "<sip:phong@127.0.0.1:5072>;regint=0;answermode=auto;"
        "audio_codecs=PCMU,G722/16000,opus/48000/2;video_codecs=H264;mediaenc=srtp-mand"
    )
    assert room.uri == "sip:phong@127.0.0.1:5072"
    plain = Baresip(tmp_path / "plain", colour=None, answermode="manual", ports=(5074, 4457), record_audio=False)
    plain.write_config()
    assert "video_source\t\tfakevideo,nil" in (tmp_path / "plain" / "config").read_text()
    assert "module\t\t\tsndfile.so" not in (tmp_path / "plain" / "config").read_text()
    assert (tmp_path / "plain" / "accounts").read_text().rstrip().endswith("video_codecs=H264")


def test_what_is_read_from_its_log(tmp_path):
    room = Baresip(tmp_path / "bs", ports=(5072, 4455))
    room.dir.mkdir()
    room.log_path.write_text(LOG)
    assert room.srtp_enabled() == ["audio", "video"]
    assert room.call_audio_codecs() == ("PCMU", "PCMU")
    assert room.bitrates() == {"audio": (64000, 63573), "video": (1600, 5477)}
    tail = room.log_tail()
    assert "audio=" not in tail and "Call established" in tail and "png: wrote" in tail


def test_colours_are_matched_with_the_codec_tolerance():
    picture = np.zeros((240, 320, 3), dtype=np.uint8)
    picture[:, :] = (234, 14, 15)  # pure red after x264 and YUV 4:2:0
    assert mean_colour(picture) == (234, 14, 15) and colour_matches(mean_colour(picture), (255, 0, 0))
    assert not colour_matches((200, 14, 15), (255, 0, 0))
    composite = np.full((720, 1280, 3), 17, dtype=np.uint8)
    composite[0:360, 640:1280] = (10, 190, 5)  # one tile of a 2x2 grid
    assert find_colour(composite, (0, 200, 0)) and not find_colour(composite, (255, 0, 0))


def test_the_tone_is_the_spectrum_peak():
    rate = 8000
    t = np.arange(rate) / rate
    peak, share = tone_peak_hz((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    assert abs(peak - 440) < 2 and share > 0.9
    noise = np.random.default_rng(1).normal(0, 0.3, rate).astype(np.float32)
    assert tone_peak_hz(noise, rate)[1] < 0.1
