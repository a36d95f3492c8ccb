"""Audio MCU: jitter buffers, active-speaker selection, N-1 mixing, encode once per output."""

from . import libopus
from .clock import MixerClock
from .codec import (
    FIBRE, PROFILES, THIN, OpusDecoder, OpusEncoder, Profile, opus_has_lbrr, tone_packets,
)
from .jitter import CONCEAL, JitterBuffer, JitterStats, Packet
from .libopus import LibopusDecoder
from .mixer import EVERYONE, AudioMixer, Listener, TickPlan
from .select import SpeakerSelector

__all__ = [
    "AudioMixer", "CONCEAL", "EVERYONE", "FIBRE", "JitterBuffer", "JitterStats",
    "LibopusDecoder", "Listener", "MixerClock", "OpusDecoder", "OpusEncoder", "PROFILES", "Packet", "Profile",
    "SpeakerSelector", "THIN", "TickPlan", "libopus", "opus_has_lbrr", "tone_packets",
]
