"""Audio MCU: jitter buffers, active-speaker selection, N-1 mixing, encode once per output;
G.711/G.722 for SIP room systems."""

from mcu.audio import libopus
from mcu.audio.clock import MixerClock
from mcu.audio.codec import (
    FIBRE,
    PROFILES,
    THIN,
    OpusDecoder,
    OpusEncoder,
    Profile,
    opus_has_lbrr,
    tone_packets,
)
from mcu.audio.jitter import CONCEAL, JitterBuffer, JitterStats, Packet
from mcu.audio.libopus import LibopusDecoder
from mcu.audio.mixer import EVERYONE, AudioMixer, Listener, TickPlan
from mcu.audio.select import SpeakerSelector
from mcu.audio.telephony import TELEPHONY, TelephonyCodec, TelephonyDecoder, TelephonyEncoder

__all__ = [
    "AudioMixer",
    "CONCEAL",
    "EVERYONE",
    "FIBRE",
    "JitterBuffer",
    "JitterStats",
    "LibopusDecoder",
    "Listener",
    "MixerClock",
    "OpusDecoder",
    "OpusEncoder",
    "PROFILES",
    "Packet",
    "Profile",
    "SpeakerSelector",
    "TELEPHONY",
    "THIN",
    "TelephonyCodec",
    "TelephonyDecoder",
    "TelephonyEncoder",
    "TickPlan",
    "libopus",
    "opus_has_lbrr",
    "tone_packets",
]
