"""What the codec tests share (issue #13): a fake camera of known colours for Chromium, a shim that
restricts a page's video codecs before the page's own code runs, and probes of what a page decodes.

The camera is a Y4M file (``--use-file-for-fake-video-capture``): its upper half is one colour, its
lower half another, so a test compares colour regions of the decoded picture with the sent one (a
frame that merely arrives, or one with swapped planes, does not pass). The probes are JS functions
that run unchanged in Chromium (playwright's ``evaluate``) and Firefox (``Page.call``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.web.browser import CHROMIUM, FLAGS, PC_STATE, async_api

RGB = tuple[int, int, int]
CAMERA_SIZE = (320, 240)  # small: cheap to encode and transcode on a loaded CI machine
TOLERANCE = 45  # per channel, 0-255: codec and colour-space round trips stay well inside it

# Colours far apart from each other, from the black background of the composite and from grey
RED, BLUE = (200, 40, 40), (40, 40, 200)
GREEN, MAGENTA = (40, 180, 40), (200, 40, 200)


def bt601(rgb: RGB) -> RGB:
    """(Y, Cb, Cr) of an sRGB colour, BT.601 limited range: how browsers read untagged I420."""
    r, g, b = (c / 255 for c in rgb)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(cb), round(cr)


def camera_file(path: Path, top: RGB, bottom: RGB, frames: int = 5) -> Path:
    """A Y4M clip (Chromium loops it) whose upper half is ``top`` and lower half ``bottom``."""
    width, height = CAMERA_SIZE
    half = width * height // 2
    (y1, u1, v1), (y2, u2, v2) = bt601(top), bt601(bottom)
    luma = bytes([y1]) * half + bytes([y2]) * half
    chroma_half = half // 4  # 4:2:0: each chroma plane is a quarter of the luma plane
    frame = b"FRAME\n" + luma + bytes([u1]) * chroma_half + bytes([u2]) * chroma_half
    frame += bytes([v1]) * chroma_half + bytes([v2]) * chroma_half
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


@asynccontextmanager
async def chromiums_with_cameras(folder: Path, cameras: dict[str, tuple[RGB, RGB]]) -> AsyncIterator[dict]:
    """key -> a Chromium whose fake camera plays a clip of that key's (upper, lower) colours."""
    async with async_api.async_playwright() as pw:
        browsers: dict = {}
        try:
            for n, (key, colours) in enumerate(cameras.items()):
                clip = camera_file(folder / f"camera-{n}.y4m", *colours)
                args = [*FLAGS, f"--use-file-for-fake-video-capture={clip}"]
                browsers[key] = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
            yield browsers
        finally:
            for b in browsers.values():
                await b.close()


async def wait_connected(page: Any, what: str, timeout: float = 20.0) -> None:
    """Waits until a Chromium page's peer connection is connected; else fails with the page's notice,
    its console and the server's error messages (e.g. an offer the node refused)."""
    try:
        await page.wait_for_function(PC_STATE + " === 'connected'", timeout=timeout * 1000)
    except Exception as exc:
        notice = await page.locator("#media-notice").text_content()
        said = list(dict.fromkeys(page.console_lines))[-6:]
        raise AssertionError(f"{what} did not connect within {timeout} s: notice {notice!r}, {said}") from exc


def codec_only(mime: str) -> str:
    """Init script: every video transceiver of the page prefers only ``mime`` (e.g. "video/H264")
    before each offer or answer it makes, as a browser restricted to that codec would. Chromium's
    RTCRtpTransceiver.setCodecPreferences; the join page itself is unchanged."""
    return f"""(() => {{
  const wanted = {mime!r};
  const only = () => RTCRtpReceiver.getCapabilities("video").codecs.filter((c) => c.mimeType === wanted);
  for (const name of ["createOffer", "createAnswer"]) {{
    const original = RTCPeerConnection.prototype[name];
    RTCPeerConnection.prototype[name] = function (...args) {{
      for (const t of this.getTransceivers()) {{
        if (t.receiver.track.kind === "video" && t.currentDirection !== "stopped") t.setCodecPreferences(only());
      }}
      return original.apply(this, args);
    }};
  }}
}})();"""


# Every remote video that plays: its size and the mean colour of each cell of a grid over its picture.
PROBE = """(cells) => [...document.querySelectorAll(".video.remote video")].filter((v) => v.videoWidth > 0).map((v) => {
  const c = document.createElement("canvas"), w = v.videoWidth, h = v.videoHeight;
  c.width = w; c.height = h;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  const px = g.getImageData(0, 0, w, h).data, grid = [];
  for (let row = 0; row < cells; row++) {
    const line = [];
    for (let col = 0; col < cells; col++) {
      const x0 = Math.floor(col * w / cells), x1 = Math.floor((col + 1) * w / cells);
      const y0 = Math.floor(row * h / cells), y1 = Math.floor((row + 1) * h / cells);
      const sum = [0, 0, 0];
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
        const i = 4 * (y * w + x);
        sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2];
      }
      const n = Math.max(1, (x1 - x0) * (y1 - y0));
      line.push(sum.map((s) => Math.round(s / n)));
    }
    grid.push(line);
  }
  return { width: w, height: h, grid };
})"""

# The codecs of the page's decoding inbound and encoding outbound video streams (getStats).
CODECS_IN_USE = """async () => { const pc = window.giaobanJoin.media.pc, used = { inbound: [], outbound: [] };
  if (!pc) return used;
  const stats = await pc.getStats();
  stats.forEach((r) => {
    if (r.kind !== "video" || !r.codecId || !stats.get(r.codecId)) return;
    if (r.type === "inbound-rtp" && r.framesDecoded > 0) used.inbound.push(stats.get(r.codecId).mimeType);
    if (r.type === "outbound-rtp" && (r.framesEncoded || r.framesSent) > 0) used.outbound.push(stats.get(r.codecId).mimeType);
  });
  return used; }"""


def near(seen: list[int], expected: RGB) -> bool:
    return all(abs(s - e) <= TOLERANCE for s, e in zip(seen, expected))


def shows_camera(video: dict, top: RGB, bottom: RGB) -> bool:
    """The decoded picture is that camera: its upper and lower halves have the camera's colours
    (the two grid rows next to the middle, where the colours meet, are left out)."""
    grid = video["grid"]
    rows = len(grid)
    upper, lower = grid[: rows // 2 - 1], grid[rows // 2 + 1 :]
    return all(near(c, top) for line in upper for c in line) and all(near(c, bottom) for line in lower for c in line)


def contains_camera(video: dict, top: RGB, bottom: RGB) -> bool:
    """Some cell of the picture (a composite) has the camera's upper colour, and some its lower one."""
    cells = [c for line in video["grid"] for c in line]
    return any(near(c, top) for c in cells) and any(near(c, bottom) for c in cells)


async def wait_for_picture(
    probe: Callable[[], Awaitable[list[dict]]], matches: Callable[[dict], bool], what: str, timeout: float = 20.0
) -> dict:
    """Polls ``probe`` (the page's PROBE) until one of its videos ``matches``; that video, or an
    AssertionError with what the page decoded last."""
    deadline = time.monotonic() + timeout
    videos: list[dict] = []
    while time.monotonic() < deadline:
        videos = await probe()
        for video in videos:
            if matches(video):
                return video
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not seen within {timeout} s; the page decoded {summary(videos)}")


def summary(videos: list[dict]) -> list[Any]:
    """Short form of PROBE's answer for a failure message: size and the grid's distinct colours."""
    out: list[Any] = []
    for v in videos:
        colours = sorted({tuple(c) for line in v["grid"] for c in line})
        out.append(f"{v['width']}x{v['height']} colours {colours[:12]}{' ...' if len(colours) > 12 else ''}")
    return out or ["no playing remote video"]
