"""Audio mixer of one meeting: N-1 mixes of the active speakers, encoded once per distinct output.

Per 20 ms tick (``tick()``, or ``MixerClock`` for the real-time clock):

1. ``collect()`` (event-loop thread, cheap): every source's jitter buffer gives its packet, a
   concealment marker or nothing; levels update the speaker selection; the plan lists the
   sources to decode (the selected ones, plus sources that send no RFC 6464 level: their level
   is measured from the decoded audio) and the distinct outputs that have listeners.
2. ``render(plan)`` (may run in a worker thread; touches only decoders, encoders and the plan):
   decode, sum in float32, soft-clip, encode. Outputs are ``EVERYONE`` (all selected speakers,
   for every listener who is not one of them) and one "mix minus me" per selected speaker that
   listens. Each output is encoded once per profile that has a listener for it, so the number
   of encodes per tick depends on speakers and profiles, never on the number of listeners.
   A profile's codec picks the encoder: Opus, or G.711/G.722 for SIP room systems
   (``mcu.audio.telephony``; 50 rooms hearing the same mix in PCMU cost one encode).
3. ``fanout(plan, outputs)`` (event-loop thread): every listener gets the payload of its output
   by reference; listeners with equal output and profile share one ``bytes`` object.

Concealment of a missing frame of a mixed source (counted per source in ``stats()``): with
``decoder="libopus"`` (the default when libopus loads, see ``mcu.audio.libopus``) the frame is
rebuilt from the in-band FEC of the next packet when it is already buffered and carries LBRR
(``concealed_fec``), else by Opus PLC (``concealed_plc``). libavcodec exposes neither, so with
``decoder="pyav"`` the last decoded frame is repeated with a fade (gain halves per missing frame;
``concealed_fade``). After ``max_conceal`` missing frames in a row the source is silent; a source
that stopped sending contributes silence while the output clock keeps going.
A listener that starts or stops speaking moves between the EVERYONE stream and its own stream
(different encoder instances, same RTP timestamps); Opus decoders ride over such a switch.
Only 48 kHz mono with 20 ms packets (the WebRTC default) is supported; other packet durations
are cut or zero-padded to 20 ms, stereo sources are downmixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field

import numpy as np

from mcu.audio.clock import MixerClock
from mcu.audio.codec import PROFILES, OpusDecoder, OpusEncoder, Profile, make_frame
from mcu.audio.jitter import CONCEAL, JitterBuffer, Packet
from mcu.audio.libopus import LibopusDecoder
from mcu.audio.libopus import available as libopus_available
from mcu.audio.select import SpeakerSelector
from mcu.audio.telephony import TelephonyEncoder

log = logging.getLogger(__name__)

EVERYONE = "*"  # output key of the mix of all selected speakers; other keys are source ids
SOFT_KNEE = 0.7  # soft-clip starts above this fraction of full scale
Encoder = OpusEncoder | TelephonyEncoder  # by the profile's codec: encode_frame(48 kHz 20 ms) -> payload


def soft_clip(x: np.ndarray) -> np.ndarray:
    """Identity below the knee, tanh above it: never exceeds full scale, no hard edges."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= SOFT_KNEE:
        return x
    k = SOFT_KNEE
    mag = np.abs(x)
    over = k + (1.0 - k) * np.tanh((mag - k) / (1.0 - k))
    return np.where(mag > k, np.sign(x) * over, x).astype(np.float32)


def dbov(pcm: np.ndarray) -> int:
    """RFC 6464 style level of a frame: 0 (full scale) .. 127 (silence)."""
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if pcm.size else 0.0
    if rms <= 1e-7:
        return 127
    return int(min(127, max(0, round(-20.0 * np.log10(rms)))))


@dataclass(eq=False)
class Listener:
    """A subscriber of the mix. ``on_packet(payload, rtp_timestamp)`` is called on the event
    loop thread for every tick; without it, packets wait in the bounded ``packets`` deque."""

    endpoint_id: str
    profile: str
    on_packet: Callable[[bytes, int], None] | None = None
    packets: deque = field(default_factory=lambda: deque(maxlen=50))
    received: int = 0
    errors: int = 0
    output: str = EVERYONE  # key of the output delivered last

    def deliver(self, payload: bytes, timestamp: int, key: str) -> None:
        self.received += 1
        self.output = key
        if self.on_packet is None:
            self.packets.append((timestamp, payload))
            return
        try:
            self.on_packet(payload, timestamp)
        except Exception:  # a broken subscriber must not stop the clock
            self.errors += 1
            log.exception("audio listener %s failed", self.endpoint_id)


class _Source:
    __slots__ = (
        "source_id",
        "jitter",
        "decoder",
        "last_pcm",
        "run",
        "level",
        "measured",
        "level_known",
        "item",
        "decoded_tick",
        "concealed",
    )

    def __init__(self, source_id: str, jitter: JitterBuffer):
        self.source_id = source_id
        self.jitter = jitter
        self.decoder: OpusDecoder | LibopusDecoder | None = None
        self.last_pcm: np.ndarray | None = None
        self.run = 0  # consecutive concealed frames
        self.level: int | None = None  # last level used for selection
        self.measured: int | None = None  # level measured from decoded audio
        self.level_known = True  # the sender puts RFC 6464 levels on its packets
        self.item: Packet | object | None = None
        self.decoded_tick = -2
        self.concealed = {"fec": 0, "plc": 0, "fade": 0}  # frames synthesised, by method


@dataclass
class TickPlan:
    tick: int
    timestamp: int
    selected: frozenset[str]
    # (source, Packet | CONCEAL | None, after CONCEAL: the next packet if buffered, for FEC)
    decode: list[tuple[_Source, object, bytes | None]]
    needed: dict[str, set[str]]  # output key -> profile names with listeners


class AudioMixer:
    def __init__(
        self,
        max_speakers: int = 3,
        sample_rate: int = 48000,
        frame_ms: int = 20,
        profiles: dict[str, Profile] | None = None,
        prefill: int = 2,
        capacity: int = 8,
        max_conceal: int = 3,
        hold_ms: int = 1000,
        speech_level: int = 60,
        decoder: str = "auto",
    ):
        if not 1 <= max_speakers <= 8:
            raise ValueError("max_speakers must be 1..8")
        if sample_rate != 48000 or frame_ms != 20:
            raise ValueError("only 48 kHz with 20 ms frames is supported")
        if decoder == "auto":
            decoder = "libopus" if libopus_available() else "pyav"
        if decoder not in ("libopus", "pyav") or (decoder == "libopus" and not libopus_available()):
            raise ValueError(f"decoder {decoder!r} not available (libopus | pyav)")
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.profiles = dict(profiles or PROFILES)
        self._jitter_args = (prefill, capacity, max_conceal)
        self.max_conceal = max_conceal
        self.selector = SpeakerSelector(max_speakers, speech_level, hold_ticks=max(1, hold_ms // frame_ms))
        self.sources: dict[str, _Source] = {}
        self.listeners: dict[str, Listener] = {}
        self._by_profile: dict[str, set[str]] = {p: set() for p in self.profiles}
        self._encoders: dict[tuple[str, str], Encoder] = {}
        self._silence = np.zeros(self.frame_samples, dtype=np.float32)
        self.tick_count = 0
        self.decodes = 0
        self.encodes = 0
        self.last_encodes = 0
        self.last_outputs: list[tuple[str, str]] = []
        self.clock: MixerClock | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, offload: bool = True) -> MixerClock:
        """Run the real-time 20 ms clock (see ``mcu.audio.clock``); idempotent."""
        if self.clock is None:
            self.clock = MixerClock(self, offload=offload)
            self.clock.start()
        return self.clock

    async def stop(self) -> None:
        """Idempotent: stops the clock (waiting for an in-flight tick) and frees the codecs.
        Sources and listeners stay registered; ``start()`` may run the mixer again."""
        clock, self.clock = self.clock, None
        if clock is not None:
            await clock.stop()
        for src in self.sources.values():
            if isinstance(src.decoder, LibopusDecoder):
                src.decoder.close()
            src.decoder, src.last_pcm = None, None
        self._encoders.clear()

    # ---- inputs -------------------------------------------------------------------------
    def push(
        self, source_id: str, opus_payload: bytes, seq: int, timestamp: int, audio_level: int | None = None
    ) -> bool:
        """One depacketized Opus payload of a source; False if it was dropped (late/dup)."""
        src = self.sources.get(source_id)
        if src is None:
            src = self.sources[source_id] = _Source(source_id, JitterBuffer(*self._jitter_args))
        return src.jitter.push(Packet(seq & 0xFFFF, timestamp, opus_payload, audio_level))

    def remove_source(self, source_id: str) -> None:
        self.sources.pop(source_id, None)
        self.selector.forget(source_id)

    # ---- listeners ----------------------------------------------------------------------
    def listener(
        self, endpoint_id: str, profile: str = "fibre", on_packet: Callable[[bytes, int], None] | None = None
    ) -> Listener:
        """Subscribe (or re-subscribe with another profile). An endpoint that also speaks uses
        the same id as its source, so it gets the mix without its own voice."""
        if profile not in self.profiles:
            raise ValueError(f"unknown audio profile {profile!r}; known: {sorted(self.profiles)}")
        self.remove_listener(endpoint_id)
        lst = self.listeners[endpoint_id] = Listener(endpoint_id, profile, on_packet)
        self._by_profile[profile].add(endpoint_id)
        return lst

    def remove_listener(self, endpoint_id: str) -> None:
        lst = self.listeners.pop(endpoint_id, None)
        if lst is not None:
            self._by_profile[lst.profile].discard(endpoint_id)

    # ---- one tick -----------------------------------------------------------------------
    def collect(self) -> TickPlan:
        tick = self.tick_count
        self.tick_count += 1
        levels: dict[str, int | None] = {}
        for sid, src in self.sources.items():
            item = src.item = src.jitter.pop()
            if isinstance(item, Packet):
                src.level_known = item.level is not None
                src.level = item.level if src.level_known else src.measured
            elif item is None:
                src.level = None
            levels[sid] = src.level  # CONCEAL keeps the last level
        selected = frozenset(self.selector.update(levels, tick))
        decode = [
            (src, src.item, src.jitter.peek() if src.item is CONCEAL else None)
            for sid, src in self.sources.items()
            if sid in selected or not src.level_known
        ]
        needed: dict[str, set[str]] = {}
        speaking_listeners = {p: 0 for p in self._by_profile}
        for sid in selected:
            lst = self.listeners.get(sid)
            if lst is not None:
                needed.setdefault(sid, set()).add(lst.profile)
                speaking_listeners[lst.profile] += 1
        for p, members in self._by_profile.items():
            if len(members) > speaking_listeners[p]:
                needed.setdefault(EVERYONE, set()).add(p)
        return TickPlan(tick, (tick * self.frame_samples) & 0xFFFFFFFF, selected, decode, needed)

    def _pcm(self, src: _Source, item: object, next_payload: bytes | None, tick: int) -> np.ndarray | None:
        if item is None:
            src.last_pcm, src.run = None, 0
            return None
        if item is CONCEAL:
            src.run += 1
            if src.run > self.max_conceal or src.decoder is None:
                return None
            if isinstance(src.decoder, LibopusDecoder):
                fec_before = src.decoder.fec_frames
                pcm = src.decoder.conceal(self.frame_samples, next_payload)
                src.concealed["fec" if src.decoder.fec_frames > fec_before else "plc"] += 1
                return pcm
            if src.last_pcm is None:
                return None
            src.concealed["fade"] += 1
            g0, g1 = 0.5 ** (src.run - 1), 0.5**src.run
            return src.last_pcm * np.linspace(g0, g1, src.last_pcm.size, dtype=np.float32)
        if src.decoder is None or tick - src.decoded_tick > 1 + self.max_conceal:
            # fresh state after a pause
            src.decoder = (
                LibopusDecoder(self.sample_rate) if self.decoder == "libopus" else OpusDecoder(self.sample_rate)
            )
        src.decoded_tick = tick
        self.decodes += 1
        pcm = src.decoder.decode(item.payload)
        if pcm is not None and pcm.size != self.frame_samples:
            fixed = np.zeros(self.frame_samples, dtype=np.float32)
            fixed[: min(pcm.size, fixed.size)] = pcm[: fixed.size]
            pcm = fixed
        src.last_pcm, src.run = pcm, 0
        if pcm is not None and not src.level_known:
            src.measured = dbov(pcm)
        return pcm

    def render(self, plan: TickPlan) -> dict[tuple[str, str], bytes | None]:
        contrib: dict[str, np.ndarray] = {}
        for src, item, next_payload in plan.decode:
            pcm = self._pcm(src, item, next_payload, plan.tick)
            if pcm is not None and src.source_id in plan.selected:
                contrib[src.source_id] = pcm
        total = np.sum(list(contrib.values()), axis=0, dtype=np.float32) if contrib else self._silence
        outputs: dict[tuple[str, str], bytes | None] = {}
        for key, profiles in plan.needed.items():
            own = contrib.get(key) if key != EVERYONE else None
            frame = make_frame(soft_clip(total - own if own is not None else total), self.sample_rate)
            for pname in sorted(profiles):
                enc = self._encoders.get((key, pname))
                if enc is None:
                    enc = self._encoders[(key, pname)] = self._make_encoder(self.profiles[pname])
                outputs[(key, pname)] = enc.encode_frame(frame)
        for k in [k for k in self._encoders if k not in outputs]:  # speaker left: drop state
            del self._encoders[k]
        self.encodes += len(outputs)
        self.last_encodes = len(outputs)
        self.last_outputs = list(outputs)
        return outputs

    def _make_encoder(self, profile: Profile) -> Encoder:
        if profile.codec == "OPUS":
            return OpusEncoder(profile, self.sample_rate, self.frame_samples)
        return TelephonyEncoder(profile.codec, self.sample_rate, self.frame_samples)

    def fanout(self, plan: TickPlan, outputs: dict[tuple[str, str], bytes | None]) -> int:
        selected, ts, delivered = plan.selected, plan.timestamp, 0
        for lst in list(self.listeners.values()):
            key = lst.endpoint_id if lst.endpoint_id in selected else EVERYONE
            payload = outputs.get((key, lst.profile))
            if payload is not None:
                lst.deliver(payload, ts, key)
                delivered += 1
        return delivered

    def tick(self) -> dict[tuple[str, str], bytes | None]:
        """One synchronous 20 ms step (tests, benchmarks, or a caller with its own clock)."""
        plan = self.collect()
        outputs = self.render(plan)
        self.fanout(plan, outputs)
        return outputs

    async def tick_async(self, executor: Executor | None = None) -> None:
        """One step with decode/mix/encode in ``executor`` (a single worker keeps them ordered)."""
        plan = self.collect()
        if executor is None:
            outputs = self.render(plan)
        else:
            outputs = await asyncio.get_running_loop().run_in_executor(executor, self.render, plan)
        self.fanout(plan, outputs)

    def stats(self) -> dict:
        return {
            "ticks": self.tick_count,
            "decodes": self.decodes,
            "encodes": self.encodes,
            "encodes_last_tick": self.last_encodes,
            "outputs_last_tick": [f"{k}/{p}" for k, p in self.last_outputs],
            "selected": sorted(self.selector.members),
            "listeners": len(self.listeners),
            "decoder": self.decoder,
            "sources": {
                sid: {**asdict(s.jitter.stats), **{f"concealed_{k}": v for k, v in s.concealed.items()}}
                for sid, s in self.sources.items()
            },
        }
