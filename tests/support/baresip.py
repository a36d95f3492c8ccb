"""baresip 1.0 (Debian) run headless on 127.0.0.1 as a SIP video room system nobody here wrote (#14).

:class:`Baresip` writes a config from the templates in tests/sip/baresip/ into a directory of its
own (free SIP and control ports, a camera of one colour or fakevideo, the ausine 440 Hz tone as
microphone, H.264 through avcodec/libx264, optional SDES-SRTP), starts ``baresip -f DIR -t LIMIT``
and drives it over ctrl_tcp (netstring JSON: commands, and the call events it reports). What it
observed is read at its end: the decoded picture it receives (``snapshot_recv`` → PNG → colour),
the audio it receives (the sndfile module's decoder dump → WAV), its log.

It is always stopped: ``async with Baresip(...) as room`` sends ``quit``, then kills it; ``-t`` bounds
its life even if the test process dies. Tests skip (``require_baresip``) only where the binary is
missing; CI installs it (scripts/setup.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import string
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.redis_server import free_port

TEMPLATES = Path(__file__).resolve().parents[1] / "sip" / "baresip"
BINARY = "/usr/bin/baresip"
COLOUR_TOLERANCE = 25  # x264 + YUV 4:2:0 round trip: pure red comes back as (234, 14, 15)


def require_baresip() -> str:
    """The baresip binary, or a skip that says why and how to install it."""
    found = shutil.which("baresip") or (BINARY if Path(BINARY).exists() else None)
    if found is None or not Path("/usr/lib/baresip/modules/avcodec.so").exists():
        pytest.skip("baresip with baresip-ffmpeg is not installed (apt-get install baresip; scripts/setup.sh does)")
    return found


@dataclass
class CallEvent:
    """One event baresip reported over ctrl_tcp (``type`` such as CALL_ESTABLISHED, CALL_CLOSED)."""

    type: str
    peer: str
    param: str
    raw: dict


class Baresip:
    """One headless baresip: a room system with a camera of ``colour`` (RGB; None: fakevideo)."""

    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "room",
        colour: tuple[int, int, int] | None = (255, 0, 0),
        srtp: bool = False,
        answermode: str = "auto",
        audio_codecs: str = "PCMU,G722/16000,opus/48000/2",
        video_codecs: str = "H264",
        size: tuple[int, int] = (320, 240),
        fps: int = 15,
        lifetime_s: int = 120,
        record_audio: bool = True,
        ports: tuple[int, int] | None = None,
    ) -> None:
        """``ports``: its (SIP, control) ports; free ones are chosen when not given."""
        self.dir = workdir
        self.user, self.colour, self.srtp = user, colour, srtp
        self.answermode, self.audio_codecs, self.video_codecs = answermode, audio_codecs, video_codecs
        self.size, self.fps, self.lifetime_s, self.record_audio = size, fps, lifetime_s, record_audio
        self.sip_port, self.ctrl_port = ports or (free_port(), free_port())
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[CallEvent] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task | None = None
        self._replies: dict[str, asyncio.Future] = {}
        self._tokens = 0
        self._changed = asyncio.Event()

    @property
    def uri(self) -> str:
        """Where it is dialled."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "baresip.log"

    # -- life ----------------------------------------------------------------------------------

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "snd").mkdir(exist_ok=True)
        width, height = self.size
        if self.colour is None:
            source = "fakevideo,nil"
        else:
            r, g, b = self.colour
            source = f"avformat,lavfi,color=c=0x{r:02x}{g:02x}{b:02x}:s={width}x{height}:r={self.fps}"
        values = {
            "sip_port": self.sip_port,
            "ctrl_port": self.ctrl_port,
            "snd_path": self.dir / "snd",
            "video_source": source,
            "width": width,
            "height": height,
            "fps": self.fps,
            "video_bitrate": 500000,
            "extra_modules": "module\t\t\tsndfile.so" if self.record_audio else "",
            "user": self.user,
            "answermode": self.answermode,
            "audio_codecs": self.audio_codecs,
            "video_codecs": self.video_codecs,
            "mediaenc": ";mediaenc=srtp-mand" if self.srtp else "",
        }
        for name in ("config", "accounts"):
            text = (TEMPLATES / f"{name}.template").read_text()
            (self.dir / name).write_text(string.Template(text).substitute(values))
        (self.dir / "contacts").write_text("")

    async def start(self, dial: str | None = None) -> "Baresip":
        """Start it; returns when its control port answers (and it dialled ``dial``, if given: over
        ctrl_tcp, not ``-e``, so that no call event comes before we listen). A port taken since it
        was chosen (the SIP or control port) is chosen again: ``uri`` is final once this returns."""
        binary = require_baresip()
        for attempt in range(3):
            self.write_config()
            # stdbuf: its log (stdout to a file) is read while it runs, so no block buffering
            args = ["stdbuf", "-oL", binary, "-f", str(self.dir), "-t", str(self.lifetime_s)]
            log = self.log_path.open("wb")
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
            log.close()
            try:
                await self._connect_control(timeout=10.0)
                break
            except AssertionError:
                if attempt == 2 or "Address already in use" not in self.log():
                    raise
                self.sip_port, self.ctrl_port = free_port(), free_port()
        if dial:
            await self.dial(dial)
        return self

    async def _connect_control(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"baresip exited ({self.proc.returncode}) at start: {self.log_tail()}")
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                break
            except OSError:
                if loop.time() > deadline:
                    raise AssertionError(f"baresip's ctrl_tcp did not open within {timeout}s: {self.log_tail()}")
                await asyncio.sleep(0.1)
        self._read_task = asyncio.create_task(self._read_control())

    async def stop(self) -> None:
        """Quit it (hanging up its calls), then kill it; bounded, idempotent."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.command("quit"), 2.0)
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except asyncio.TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 5.0)
        if self._read_task is not None:
            self._read_task.cancel()
            await asyncio.gather(self._read_task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        self._writer = None

    async def __aenter__(self) -> "Baresip":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- control -------------------------------------------------------------------------------

    async def command(self, name: str, params: str = "", timeout: float = 5.0) -> dict:
        """Run one baresip command (``dial``, ``hangup``, ``snapshot_recv``...); its JSON reply."""
        assert self._writer is not None, "baresip not started"
        self._tokens += 1
        token = f"t{self._tokens}"
        reply = asyncio.get_running_loop().create_future()
        self._replies[token] = reply
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        await self._writer.drain()
        try:
            return await asyncio.wait_for(reply, timeout)
        finally:
            self._replies.pop(token, None)

    async def _read_control(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await self._reader.readuntil(b":"))[:-1])
                msg = json.loads((await self._reader.readexactly(length + 1))[:-1])
                if msg.get("response") and msg.get("token") in self._replies:
                    self._replies[msg["token"]].set_result(msg)
                elif msg.get("event"):
                    self.events.append(
                        CallEvent(str(msg.get("type")), str(msg.get("peeruri", "")), str(msg.get("param", "")), msg)
                    )
                    self._changed.set()

    async def dial(self, uri: str) -> None:
        reply = await self.command("dial", uri)
        assert reply.get("ok"), f"baresip refused to dial {uri}: {reply}"

    async def hangup(self) -> None:
        await self.command("hangup")

    async def wait_event(self, *types: str, timeout: float = 15.0) -> CallEvent:
        """The first event of one of ``types`` (seen before or arriving within ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events:
                if event.type in types:
                    return event
            left = deadline - loop.time()
            if left <= 0:
                seen = [(e.type, e.param) for e in self.events]
                raise AssertionError(f"baresip reported no {types} within {timeout}s; events {seen}; {self.log_tail()}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def established(self) -> bool:
        return any(e.type == "CALL_ESTABLISHED" for e in self.events)

    # -- what it observed ----------------------------------------------------------------------

    async def received_picture(self, name: str = "recv") -> np.ndarray | None:
        """The last decoded picture it received (RGB array), or None while it has decoded none."""
        path = self.dir / f"{name}-{self._tokens + 1}.png"
        reply = await self.command("snapshot_recv", str(path))
        for _ in range(40):  # the snapshot is written by the video thread at its next frame
            if path.exists() and path.stat().st_size > 0:
                await asyncio.sleep(0.05)
                with Image.open(path) as img:
                    return np.asarray(img.convert("RGB"))
            await asyncio.sleep(0.05)
        assert reply.get("ok") is not False, reply
        return None

    async def wait_picture(
        self, colour: tuple[int, int, int], timeout: float = 15.0, where: str = "centre"
    ) -> np.ndarray:
        """Poll the received picture until ``colour`` (±COLOUR_TOLERANCE) fills ``where`` of it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: Any = None
        while loop.time() < deadline:
            picture = await self.received_picture()
            if picture is not None:
                seen = mean_colour(picture, where)
                if colour_matches(seen, colour):
                    return picture
            await asyncio.sleep(0.3)
        raise AssertionError(
            f"baresip never decoded {colour} in the {where} of its picture (last {seen}); {self.log_tail()}"
        )

    def received_audio(self) -> tuple[np.ndarray, int]:
        """What it decoded of the audio it received (mono float -1..1, sample rate), from sndfile."""
        dumps = sorted((self.dir / "snd").glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        assert dumps, f"baresip wrote no received audio (sndfile); {self.log_tail()}"
        with wave.open(str(dumps[-1])) as wav:
            rate, channels = wav.getframerate(), wav.getnchannels()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        return data.reshape(-1, channels)[:, 0].astype(np.float32) / 32768, rate

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 25) -> str:
        """The end of its log without the status line it redraws in place."""
        text = STATUS_LINE.sub("", self.log())
        return "baresip log: " + " | ".join(text.splitlines()[-lines:])

    def srtp_enabled(self) -> list[str]:
        """The media its log says run SRTP (``audio``, ``video``)."""
        return re.findall(r"srtp: (\w+): SRTP is Enabled", self.log())

    def call_audio_codecs(self) -> tuple[str, str]:
        """The audio codecs its log says it encodes and decodes ("PCMU", "G722", "opus"), "" for none yet."""
        log = self.log()
        sent = re.findall(r"audio: Set audio encoder: (\S+)", log)
        received = re.findall(r"audio: Set audio decoder: (\S+)", log)
        return (sent[-1] if sent else "", received[-1] if received else "")

    def bitrates(self) -> dict[str, tuple[int, int]]:
        """The last status line's bit rates: {"audio": (tx, rx), "video": (tx, rx)}."""
        found = STATUS_LINE.findall(self.log())
        if not found:
            return {}
        audio_tx, audio_rx, video_tx, video_rx = (int(x) for x in found[-1])
        return {"audio": (audio_tx, audio_rx), "video": (video_tx, video_rx)}


STATUS_LINE = re.compile(r"\[\d+:\d\d:\d\d\] audio=(\d+)/(\d+) video=(\d+)/(\d+) \(bit/s\) efps=[\d.]+/[\d.]+\s*")


def mean_colour(picture: np.ndarray, where: str = "centre") -> tuple[int, int, int]:
    """Mean RGB of a region: ``centre`` (the middle ninth), ``all``, or ``left``/``right`` halves' middles."""
    h, w = picture.shape[:2]
    regions = {
        "centre": picture[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3],
        "all": picture,
        "left": picture[h // 3 : 2 * h // 3, w // 8 : 3 * w // 8],
        "right": picture[h // 3 : 2 * h // 3, 5 * w // 8 : 7 * w // 8],
    }
    region = regions[where].reshape(-1, 3)
    return tuple(int(v) for v in region.mean(axis=0))  # type: ignore[return-value]


def colour_matches(seen: tuple[int, ...], want: tuple[int, ...], tolerance: int = COLOUR_TOLERANCE) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(seen, want))


def tone_peak_hz(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """The strongest frequency of ``samples`` and its share of the spectrum's energy (0..1)."""
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window)) ** 2
    spectrum[:3] = 0  # DC
    peak = int(np.argmax(spectrum))
    band = spectrum[max(0, peak - 3) : peak + 4].sum()
    return peak * rate / len(samples), float(band / max(spectrum.sum(), 1e-12))
