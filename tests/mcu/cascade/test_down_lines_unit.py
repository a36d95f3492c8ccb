"""A cascade trunk's lines of one role, one per codec: how the origin reads their a=content, and
which of them carries a source (real Router, Stream and Output objects, no connection)."""

from __future__ import annotations

import pytest

from mcu.peer.cascade_sdp import cascade_role
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "content, role",
    [
        ("main", "main"),
        ("alt,main", "main"),
        ("slides", "slides"),
        ("alt,slides", "slides"),
        ("composite", "composite"),
        ("mix", "mix"),
        ("", None),  # an edge of the version before: the origin's first-offer rules, as before
        ("speaker", None),
    ],
)
def test_the_origin_reads_a_down_lines_role_from_its_content(content, role):
    assert cascade_role(content) == role


def line(codec: str, pt: int) -> Output:
    return Output(
        endpoint_id="cascade:edge",
        kind="video",
        role="main",
        ssrc=pt,
        payload_type=pt,
        clock_rate=90000,
        codec=codec,
        payload_types={codec: (pt, None)},
    )


def camera(codec: str) -> Stream:
    return Stream(stream_id=f"a/{codec}", endpoint_id="a", kind="video", source="camera", codec=codec, clock_rate=90000)


def test_a_source_goes_in_the_line_of_its_codec_and_the_other_pauses():
    converted: list[tuple[str, str]] = []

    def convert(stream: Stream, codec: str) -> Stream | None:
        converted.append((stream.codec, codec))
        return None

    router = Router(convert)
    vp8, h264 = line("VP8", 96), line("H264", 102)
    for codec, carrier, idle in (("H264", h264, vp8), ("VP8", vp8, h264)):
        stream = camera(codec)
        router.route_in_its_codec([vp8, h264], stream)
        assert carrier.source is stream and idle.source is None
    router.route_in_its_codec([vp8, h264], None)
    assert vp8.source is None and h264.source is None
    assert converted == []  # each forwarded untouched


def test_a_codec_no_line_has_is_converted_in_the_first():
    asked: list[str] = []
    router = Router(lambda stream, codec: asked.append(codec) and None)
    only_vp8 = line("VP8", 96)
    router.route_in_its_codec([only_vp8], camera("H264"))
    assert asked == ["VP8"] and only_vp8.source is None  # no converter output here: paused
