"""Which sources are mixed: the loudest ``max_speakers``, with hold times so the set does not flap.

Levels are RFC 6464 values in -dBov (0 = loudest, 127 = silence) per 20 ms tick. Loudness
(127 - level) is smoothed with instant attack (a talker is mixed from the first loud frame) and
slow release. A source is *active* while its smoothed loudness is above ``speech_level``.
A selected source stays selected while it was active in the last ``hold_ticks``; a louder
challenger takes the place of the quietest member only after that member has been selected for
``hold_ticks`` and when it is louder by ``margin`` dB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Member:
    since: int
    last_active: int


class SpeakerSelector:
    def __init__(
        self,
        max_speakers: int = 3,
        speech_level: int = 60,
        hold_ticks: int = 50,
        margin: float = 6.0,
        release: float = 0.05,
    ):
        self.max_speakers = max_speakers
        self.threshold = 127 - speech_level
        self.hold_ticks = hold_ticks
        self.margin = margin
        self.release = release
        self.loudness: dict[str, float] = {}
        self.members: dict[str, _Member] = {}
        self.changes = 0

    def forget(self, source_id: str) -> None:
        self.loudness.pop(source_id, None)
        if self.members.pop(source_id, None) is not None:
            self.changes += 1

    def update(self, levels: dict[str, int | None], tick: int) -> list[str]:
        """Feed this tick's level per source (None: nothing heard); return the selection."""
        for sid, level in levels.items():
            now = 0.0 if level is None else float(127 - min(127, max(0, level)))
            prev = self.loudness.get(sid, 0.0)
            self.loudness[sid] = now if now >= prev else prev + (now - prev) * self.release
        loud = self.loudness
        for sid, m in list(self.members.items()):
            if loud.get(sid, 0.0) >= self.threshold:
                m.last_active = tick
            elif tick - m.last_active > self.hold_ticks:
                del self.members[sid]
                self.changes += 1
        challengers = sorted(
            (s for s, v in loud.items() if v >= self.threshold and s not in self.members),
            key=loud.__getitem__,
            reverse=True,
        )
        for sid in challengers:
            if len(self.members) < self.max_speakers:
                self.members[sid] = _Member(tick, tick)
                self.changes += 1
                continue
            weakest = min(self.members, key=lambda s: loud.get(s, 0.0))
            m = self.members[weakest]
            if tick - m.since >= self.hold_ticks and loud[sid] > loud.get(weakest, 0.0) + self.margin:
                del self.members[weakest]
                self.members[sid] = _Member(tick, tick)
                self.changes += 1
        return list(self.members)
