"""Which H.264 subscribers take a publisher's H.264 untouched (mcu.sfu.subscriber.h264_covers,
Output.accepts, mcu.peer.negotiation's line formats, Router.in_codec_of): packetization mode and
profile decide, else the shared transcode to H.264; no I/O."""

from __future__ import annotations

import pytest

from mcu.bridge.transcode import TranscodePool
from mcu.peer.negotiation import describe, h264_format
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import H264_ENCODED, Output, h264_covers
from tests.mcu.peer.test_codec_choice import h264, offer, section

BASELINE, MAIN, HIGH = 0x42, 0x4D, 0x64


@pytest.mark.parametrize(
    ("accepted", "source", "covers"),
    [
        ((1, BASELINE), (1, BASELINE), True),
        ((1, BASELINE), (0, BASELINE), True),  # a mode 1 receiver reads single NAL units
        ((0, BASELINE), (1, BASELINE), False),  # a mode 0 one reads no FU-A / STAP-A
        ((0, BASELINE), (1, HIGH), False),
        ((1, BASELINE), (1, MAIN), False),  # baseline decoders read no CABAC / B-frames
        ((1, BASELINE), (1, HIGH), False),
        ((1, MAIN), (1, BASELINE), True),
        ((1, MAIN), (1, HIGH), False),
        ((1, HIGH), (1, MAIN), True),
        ((0, HIGH), (1, HIGH), False),
        ((1, HIGH), (1, 0x58), False),  # extended: not a profile this node serves
    ],
)
def test_a_receivers_format_covers_a_sources_mode_and_profile(accepted, source, covers):
    assert h264_covers(accepted, source) is covers


def test_what_this_node_encodes_is_covered_by_every_format_it_serves():
    assert all(h264_covers((mode, idc), H264_ENCODED) for mode in (0, 1) for idc in (BASELINE, MAIN, HIGH))


def test_an_fmtp_reads_as_mode_and_profile_with_rfc_6184s_defaults():
    assert h264_format({"packetization-mode": 1, "profile-level-id": "640c1f"}) == (1, HIGH)
    assert h264_format({"profile-level-id": "4d001f"}) == (0, MAIN)  # no mode: 0
    assert h264_format({"packetization-mode": "1"}) == (1, BASELINE)  # no profile: baseline
    assert h264_format({"packetization-mode": "2", "profile-level-id": "zz"}) == (2, BASELINE)


def test_a_line_lists_each_h264_format_once_in_its_order_with_its_payload_types():
    formats = [(96, "VP8/90000", ""), h264(100, "42e01f", 0), (101, "rtx/90000", "apt=100")]
    formats += [h264(102, "42e01f", 0), h264(104, "640c1f", 1), (105, "rtx/90000", "apt=104")]
    [line] = describe(offer(section("video", "1", formats))).values()
    assert line.h264_formats == {(0, BASELINE): (100, 101), (1, HIGH): (104, 105)}
    assert line.h264_format == (0, BASELINE)  # the first: what its sender uses
    assert line.payload_types == {"VP8": (96, None), "H264": (100, 101)}
    [vp8_only] = describe(offer(section("video", "1", [(96, "VP8/90000", "")]))).values()
    assert vp8_only.h264_formats == {} and vp8_only.h264_format == H264_ENCODED


def output(formats: dict | None, codec: str = "H264") -> Output:
    pts = {"H264": next(iter(formats.values()))} if formats else {}
    return Output(
        endpoint_id="s",
        kind="video",
        role="main",
        ssrc=1,
        payload_type=next(iter(formats.values()))[0] if formats else 96,
        clock_rate=90000,
        codec=codec,
        payload_types={"VP8": (96, 97), **pts} if codec == "VP8" else pts,
        h264_formats=formats,
    )


def test_an_output_accepts_an_h264_source_only_in_a_format_its_line_reads():
    room_system = output({(0, BASELINE): (100, None)})
    assert room_system.accepts("H264", (0, BASELINE)) and room_system.accepts("H264", H264_ENCODED)
    assert not room_system.accepts("H264", (1, BASELINE)) and not room_system.accepts("H264", (0, HIGH))
    assert room_system.accepts("H264")  # no format said (the composite's): what this node encodes
    browser = output({(1, BASELINE): (102, 103), (0, BASELINE): (100, 101), (1, HIGH): (104, 105)}, codec="VP8")
    assert all(browser.accepts("H264", (mode, idc)) for mode in (0, 1) for idc in (BASELINE, MAIN, HIGH))
    assert browser.accepts("VP8", (1, HIGH)) and not browser.accepts("AV1")
    unsaid = output(None)  # a line built without formats (tests, older callers): any H.264
    assert unsaid.accepts("H264", (1, HIGH))


def test_a_forwarded_h264_source_goes_out_in_the_payload_type_of_a_format_that_reads_it():
    browser = output({(1, BASELINE): (102, 103), (1, HIGH): (104, 105)}, codec="VP8")
    browser.use_codec("H264", (1, HIGH))
    assert (browser.pt, browser.rtx_pt, browser.profile) == (104, 105, (104, 0))
    browser.use_codec("H264", (0, BASELINE))
    assert browser.pt == 102  # the first that reads it
    browser.use_codec("VP8", (1, HIGH))
    assert (browser.pt, browser.rtx_pt) == (96, 97)


def camera(endpoint: str, fmt: tuple[int, int]) -> Stream:
    return Stream(
        stream_id=f"{endpoint}/1",
        endpoint_id=endpoint,
        kind="video",
        source="camera",
        codec="H264",
        clock_rate=90000,
        h264_format=fmt,
    )


def test_the_router_sends_an_h264_source_a_subscriber_cannot_read_through_the_shared_h264_transcode():
    asked: list[tuple[str, str]] = []
    converted = Stream(stream_id="xc", endpoint_id="p", kind="video", source="camera", codec="H264", clock_rate=90000)

    def convert(stream: Stream, codec: str) -> Stream | None:
        asked.append((stream.stream_id, codec))
        return converted

    router = Router(convert)
    chrome_mode_1, high = camera("chrome", (1, BASELINE)), camera("hi", (1, HIGH))
    room_system = output({(0, BASELINE): (100, None)})
    baseline_only = output({(1, BASELINE): (102, None)})
    browser = output({(1, BASELINE): (102, None), (0, BASELINE): (100, None), (1, HIGH): (104, None)})
    assert router.in_codec_of(room_system, chrome_mode_1) is converted
    assert router.in_codec_of(baseline_only, high) is converted
    assert router.in_codec_of(baseline_only, chrome_mode_1) is chrome_mode_1
    assert router.in_codec_of(browser, high) is high
    assert router.in_codec_of(room_system, converted) is converted  # the transcode itself: mode 0 baseline
    assert asked == [("chrome/1", "H264"), ("hi/1", "H264")]  # keyed by (source, codec): one per source


def test_a_node_that_may_not_encode_h264_gives_an_unreadable_h264_source_no_transcode():
    vp8_only = TranscodePool(encode_codecs=("VP8",))
    room_system = output({(0, BASELINE): (100, None)})
    assert not Router(vp8_only.convert).route(room_system, camera("chrome", (1, BASELINE)))
    assert room_system.source is None and not vp8_only.transcoders  # paused, said and counted
    assert vp8_only.stats()["not_encodable"] == {"H264": 1}
