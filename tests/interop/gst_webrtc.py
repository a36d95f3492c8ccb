"""GStreamer's webrtcbin as a WHIP publisher or a WHEP viewer, for the interop tests (tests/interop).

Run by the SYSTEM python3 (Debian's python3-gst-1.0 and GObject bindings; the project's virtual
environment has neither), as a subprocess of the tests:

    /usr/bin/python3 tests/interop/gst_webrtc.py publish URL TOKEN --codec H264 --seconds 8
    /usr/bin/python3 tests/interop/gst_webrtc.py view URL TOKEN --codec VP8 --seconds 8

A publisher sends SMPTE 75 % colour bars (``videotestsrc pattern=smpte75``: seven vertical bars)
with x264enc (constrained baseline) or vp8enc, and an Opus tone. A viewer decodes what it receives
and measures the colours across its middle row. The plain RFC 9725 flow: the offer is POSTed once ICE
gathering is complete (all candidates in it), or at once with none (``--no-candidates``), and the
answer is applied. ICE uses 127.0.0.1 only. The last line printed is a JSON report: states reached,
frames decoded, the bars' colours, the offer and answer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

WIDTH, HEIGHT, BARS = 320, 240, 7
ROW_POINTS = 64
VIDEO_PT = {"H264": 102, "VP8": 96}
ENCODE = {
    # constrained baseline at level 3.1, as a broadcast tool publishes; IDR every second
    "H264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=800"
    " ! video/x-h264,profile=constrained-baseline,level=(string)3.1 ! rtph264pay config-interval=-1"
    " aggregate-mode=zero-latency",
    "VP8": "vp8enc deadline=1 keyframe-max-dist=15 target-bitrate=800000 ! rtpvp8pay",
}
DECODE = {"H264": "rtph264depay ! avdec_h264", "VP8": "rtpvp8depay ! vp8dec"}
# the offer's formats: a viewer asks for what browsers offer; a publisher offers what its encoder
# makes (x264enc, constrained baseline level 3.1: profile-level-id 42c01f), before media flows
RECEIVE_CAPS = {
    "H264": "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=102,"
    "packetization-mode=(string)1,profile-level-id=(string)42e01f",
    "VP8": "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96",
}
SEND_CAPS = {**RECEIVE_CAPS, "H264": RECEIVE_CAPS["H264"].replace("42e01f", "42c01f")}
OPUS_CAPS = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,encoding-params=(string)2,payload=111"


class Session:
    """One webrtcbin in a pipeline, its negotiation over HTTP and what it observed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report: dict = {"frames": 0, "bars": [], "states": [], "error": ""}
        self.pipeline = Gst.Pipeline.new("interop")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipeline.add(self.webrtc)
        self._only_loopback()
        self.negotiation_needed = threading.Event()
        self._promises: list[Gst.Promise] = []
        self.webrtc.connect("on-negotiation-needed", lambda *_: self.negotiation_needed.set())
        self.webrtc.connect("notify::connection-state", self._on_state)
        self.webrtc.connect("pad-added", self._on_pad)

    def _only_loopback(self) -> None:
        """Gather host candidates on 127.0.0.1 only (libnice skips loopback by default)."""
        # kept for the session's life: PyGObject releases a reference to the ICE object that this
        # property does not give it (GStreamer 1.22), and webrtcbin's own would be freed
        self._ice = self.webrtc.get_property("ice-agent")
        self._agent = agent = self._ice.get_property("agent")
        address = Nice.Address.new()
        address.set_from_string("127.0.0.1")
        agent.add_local_address(address)

    # -- media -----------------------------------------------------------------------------

    def add_sources(self) -> None:
        codec = self.args.codec
        video = Gst.parse_bin_from_description(
            f"videotestsrc is-live=true pattern=smpte75 ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=15/1"
            f" ! videoconvert ! {ENCODE[codec]} pt={VIDEO_PT[codec]} ! queue",
            True,
        )
        audio = Gst.parse_bin_from_description(
            "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! queue",
            True,
        )
        for source in (video, audio) if self.args.audio else (video,):
            self.pipeline.add(source)
            source.link(self.webrtc)

    def add_receivers(self) -> None:
        recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
        self.webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(RECEIVE_CAPS[self.args.codec]))
        if self.args.audio:
            self.webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(OPUS_CAPS))

    def _on_pad(self, _webrtc: Gst.Element, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_string("encoding-name") or ""
        if name.upper() in DECODE:
            description = (
                f"queue ! {DECODE[name.upper()]} ! videoconvert ! video/x-raw,format=RGB"
                " ! appsink name=frames emit-signals=true max-buffers=2 drop=true sync=false"
            )
        else:
            description = "queue ! fakesink sync=false"
        branch = Gst.parse_bin_from_description(description, True)
        self.pipeline.add(branch)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))
        sink = branch.get_by_name("frames")
        if sink is not None:
            self.report["codec_received"] = name.upper()
            sink.connect("new-sample", self._on_frame)

    def _on_frame(self, sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        self.report["frames"] += 1
        if self.report["frames"] % 5 == 0:
            structure = sample.get_caps().get_structure(0)
            width, height = structure.get_value("width"), structure.get_value("height")
            ok, info = sample.get_buffer().map(Gst.MapFlags.READ)
            if ok:
                try:
                    # the centre of each bar of a full-frame picture, and a finer scan for a composite
                    self.report["bars"] = row_colours(info.data, width, height, BARS)
                    self.report["row"] = row_colours(info.data, width, height, ROW_POINTS)
                    self.report["size"] = [width, height]
                finally:
                    sample.get_buffer().unmap(info)
        return Gst.FlowReturn.OK

    def _on_state(self, *_: object) -> None:
        state = self.webrtc.get_property("connection-state").value_nick
        self.report["states"].append(state)

    # -- negotiation -----------------------------------------------------------------------

    def negotiate(self) -> None:
        if self.args.mode == "publish":
            self._offer_before_media()
        elif not self.negotiation_needed.wait(10):
            raise RuntimeError("webrtcbin never asked for negotiation")
        reply = self._call("create-offer", None)
        offer = reply.get_value("offer")
        if offer is None:
            raise RuntimeError(f"create-offer: {reply.to_string()}")
        self._call("set-local-description", offer)
        self.pipeline.set_state(Gst.State.PLAYING)
        if self.args.no_candidates:
            sdp = re.sub(r"a=(candidate|end-of-candidates)[^\r\n]*\r\n", "", offer.sdp.as_text())
        else:
            deadline = time.monotonic() + 10
            complete = GstWebRTC.WebRTCICEGatheringState.COMPLETE
            while self.webrtc.get_property("ice-gathering-state") != complete and time.monotonic() < deadline:
                time.sleep(0.05)
            sdp = self.webrtc.get_property("local-description").sdp.as_text()
        if self.args.setup:
            sdp = sdp.replace("a=setup:actpass", f"a=setup:{self.args.setup}")
        self.report["offer"] = sdp
        answer = post(self.args.url, self.args.token, sdp)
        self.report["answered_at"] = time.monotonic()  # CLOCK_MONOTONIC: the test's clock too
        self.report["answer"] = answer
        ok, message = GstSdp.SDPMessage.new_from_text(answer)
        if ok != GstSdp.SDPResult.OK:
            raise RuntimeError("the answer is not SDP")
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self._call("set-remote-description", description)

    def _offer_before_media(self) -> None:
        """Sendonly lines whose formats are set before any caps reached webrtcbin: the offer, like
        those of tools that offer before they encode, has no ``a=ssrc`` (no MID extension either:
        webrtcbin 1.22 offers no header extensions)."""
        kinds = [SEND_CAPS[self.args.codec]] + ([OPUS_CAPS] if self.args.audio else [])
        for index, caps in enumerate(kinds):
            transceiver = self.webrtc.emit("get-transceiver", index)
            transceiver.set_property("codec-preferences", Gst.Caps.from_string(caps))
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def _call(self, signal: str, argument: object) -> Gst.Structure:
        promise = Gst.Promise.new()
        if argument is None:
            self.webrtc.emit(signal, None, promise)
        else:
            self.webrtc.emit(signal, argument, promise)
        promise.wait()
        self._promises.append(promise)  # its reply, and what the reply holds, live as long as it does
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            raise RuntimeError(f"{signal}: {reply.get_value('error')}")
        return reply

    def run(self) -> None:
        if self.args.mode == "publish":
            self.add_sources()
            self.pipeline.set_state(Gst.State.READY)
        else:
            self.add_receivers()
            self.pipeline.set_state(Gst.State.PLAYING)
        try:
            self.negotiate()
            deadline = time.monotonic() + self.args.seconds
            bus = self.pipeline.get_bus()
            while time.monotonic() < deadline:
                message = bus.timed_pop_filtered(100 * Gst.MSECOND, Gst.MessageType.ERROR)
                if message is not None:
                    error, debug = message.parse_error()
                    raise RuntimeError(f"{error.message} ({debug})")
                if self.args.frames and self.report["frames"] >= self.args.frames and self.report["bars"]:
                    break
        except Exception as exc:  # reported to the test, which asserts on it
            self.report["error"] = str(exc)
        finally:
            self.pipeline.set_state(Gst.State.NULL)


def row_colours(data: bytes, width: int, height: int, points: int) -> list[list[int]]:
    """The mean RGB of 8x8 patches at ``points`` evenly spaced centres across the middle row."""
    stride = (width * 3 + 3) & ~3  # GStreamer pads RGB rows to 4 bytes
    colours = []
    for point in range(points):
        cx, cy = int((point + 0.5) * width / points), height // 2
        pixels = [
            data[y * stride + x * 3 : y * stride + x * 3 + 3]
            for y in range(cy - 4, cy + 4)
            for x in range(cx - 4, cx + 4)
        ]
        colours.append([sum(p[channel] for p in pixels) // len(pixels) for channel in range(3)])
    return colours


def post(url: str, token: str, sdp: str) -> str:
    request = urllib.request.Request(
        url,
        data=sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 201:
                raise RuntimeError(f"{url} answered {response.status}")
            return response.read().decode()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code}: {exc.read().decode(errors='replace')}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("publish", "view"))
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--codec", choices=tuple(ENCODE), default="H264")
    parser.add_argument("--no-audio", dest="audio", action="store_false")
    parser.add_argument("--no-candidates", action="store_true", help="POST the offer before gathering, with none")
    parser.add_argument("--setup", choices=("active", "passive"), help="say this instead of a=setup:actpass")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to stay connected at most")
    parser.add_argument("--frames", type=int, default=0, help="a viewer stops after this many decoded frames")
    args = parser.parse_args()
    Gst.init(None)
    session = Session(args)
    session.run()
    print(json.dumps(session.report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
