"""Active speaker detection from RFC 6464 audio levels.

Publishers put the level of each audio packet (0 = loudest, 127 = silence, in -dBov) in a
header extension; the router sums it per stream for free while forwarding. ``tick()`` runs a few
times a second: it turns the mean level of each interval into an activity score, smooths it, and
changes the speaker only when another endpoint has been clearly louder for ``switch_after``
seconds (hysteresis), so that short noises or overlapping "yes" do not flip the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SpeakerDetector:
    speech_level: float = 60.0  # mean -dBov below this counts as speech
    margin: float = 3.0  # dB a challenger must beat the speaker by
    switch_after: float = 0.6  # s of being louder before a switch
    smoothing: float = 0.5
    speaker: str | None = None
    _score: dict[str, float] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)

    def tick(self, levels: dict[str, float | None], now: float) -> str | None:
        """Feed the mean level per endpoint for the last interval; return the new speaker if
        it changed, else None."""
        for endpoint, level in levels.items():
            activity = 0.0 if level is None else max(0.0, self.speech_level - level)
            prev = self._score.get(endpoint, 0.0)
            self._score[endpoint] = self.smoothing * prev + (1 - self.smoothing) * activity
        for gone in [e for e in self._score if e not in levels]:
            self._score.pop(gone, None)
            self._since.pop(gone, None)
        if self.speaker is not None and self.speaker not in levels:
            self.speaker = None
        if not self._score:
            return None
        best = max(self._score, key=self._score.__getitem__)
        best_score = self._score[best]
        current = self._score.get(self.speaker, 0.0) if self.speaker else 0.0
        if best == self.speaker or best_score <= 0.5 or best_score < current + self.margin:
            self._since.pop(best, None)
            return None
        start = self._since.setdefault(best, now)
        if self.speaker is None or now - start >= self.switch_after:
            self._since.clear()
            self.speaker = best
            return best
        return None

    def forget(self, endpoint: str) -> None:
        self._score.pop(endpoint, None)
        self._since.pop(endpoint, None)
        if self.speaker == endpoint:
            self.speaker = None
