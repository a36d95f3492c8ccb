"""Who gets forwarded streams, who gets the composite, and on which quality rendition.

Media mode of a subscriber (``media_mode``):

* ``"sfu"``: today's selective forwarding (slots ``main``/``slides``/``audio``);
* ``"mcu"``: one composite picture (slot ``composite``) and one N-1 audio mix (slot ``mix``);
* ``"both"``: the SFU slots and the two MCU slots (province/district rooms on fibre).

``spec.extra["media_mode"]`` wins; otherwise the meeting's policy maps the link class of the
directory (``PeerSpec.link``) to a mode. The node's default policy (``DEFAULT_POLICY``) keeps
fibre on the SFU and sends thin and mobile links the composite; ``SFU_ONLY`` turns the MCU off.

Rendition choice (``RenditionController``): the starting rendition comes from the link class; then every
controller tick looks at what the subscriber reports for its composite output: RTCP RR loss
(``Output.fraction_lost``) and the REMB estimate (``Output.remb``, when the client sends one).
Down one rendition after ``DOWN_AFTER`` s (``AUDIO_AFTER`` to drop video) of loss above ``DOWN_LOSS``, or of an estimate below the
rendition's bitrate x ``REMB_MARGIN`` with some loss; up one rendition after ``UP_AFTER`` s of loss under
``UP_LOSS`` (and an estimate, if any, with ``UP_HEADROOM`` over the next rendition's bitrate).
After a switch the controller holds for ``HOLD`` s (the reports still describe the old rendition).
Below the last video rendition is ``audio`` (the composite paused, the mix goes on); from there a
clean period moves the subscriber back up to the smallest video rendition (a probe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcu.audio.telephony import TELEPHONY

MODES = ("sfu", "mcu", "both")
DEFAULT_POLICY: Mapping[str, str] = {"fibre": "sfu", "thin": "mcu", "mobile": "mcu"}
SFU_ONLY: Mapping[str, str] = {}
START_RENDITION = {"fibre": "720p", "thin": "360p", "mobile": "180p"}
VIDEO_RENDITIONS = ("720p", "360p", "180p")  # best first; must match the compositor's renditions
AUDIO_ONLY = "audio"  # below the last video rendition: the composite output is paused
LADDER = VIDEO_RENDITIONS + (AUDIO_ONLY,)
RENDITION_BITRATE = {"720p": 1_200_000, "360p": 400_000, "180p": 150_000, AUDIO_ONLY: 0}

DOWN_LOSS = 26  # RR fraction lost (x/256): about 10 %
UP_LOSS = 5  # about 2 %
DOWN_AFTER = 1.0  # s (the loss estimate itself spans a second: NACKs and RR)
UP_AFTER = 10.0  # s
HOLD = 3.0  # s after a switch (a bottleneck queue drains, NACKed holes are repaired)
AUDIO_AFTER = 3.0  # s of trouble on the smallest video rendition before dropping video
REMB_MARGIN = 1.1
UP_HEADROOM = 1.3
REMB_LOSSY = 5  # the REMB rule needs at least this loss too (a delay-based estimate alone
# ramps up slowly after start and would pull a clean fibre link down)


def media_mode(spec: Any, policy: Mapping[str, str] | None = None) -> str:
    """The mode of a joining endpoint (see the module docstring)."""
    asked = (getattr(spec, "extra", None) or {}).get("media_mode")
    if asked is not None:
        if asked not in MODES:
            raise ValueError(f"media_mode must be one of {MODES}, not {asked!r}")
        return asked
    table = DEFAULT_POLICY if policy is None else policy
    return table.get(getattr(spec, "link", "fibre"), "sfu")


def start_rendition(spec: Any) -> str:
    """The first rendition of an MCU subscriber: the one its spec asks for, else its link class's."""
    extra = getattr(spec, "extra", None) or {}
    # An edge node sends "start_rendition"; one of an older version (during a rolling upgrade)
    # still sends "start_tier", the key's name before the renditions were named so
    asked = extra.get("start_rendition", extra.get("start_tier"))
    if asked in VIDEO_RENDITIONS:
        return asked
    return START_RENDITION.get(getattr(spec, "link", "fibre"), "360p")


def audio_profile(spec: Any) -> str:
    """The mixer profile of a listener: its telephony codec's (``extra["audio_codec"]`` PCMU, PCMA
    or G722, set by a SIP room's RTP leg), else Opus for its link class (FEC on thin links)."""
    codec = str((getattr(spec, "extra", None) or {}).get("audio_codec", "")).upper()
    if codec in TELEPHONY:
        return TELEPHONY[codec].profile
    return "fibre" if getattr(spec, "link", "fibre") == "fibre" else "thin"


@dataclass
class RenditionController:
    """Hysteresis on one subscriber's reports; ``update`` returns the rendition to use."""

    rendition: str
    since: float = 0.0  # time of the last switch
    bad_since: float | None = None
    clean_since: float | None = None
    switches: int = 0

    def update(self, now: float, loss: int, remb: int | None) -> str:
        if now - self.since < HOLD:
            return self.rendition
        rate = RENDITION_BITRATE.get(self.rendition, 0)
        starved = remb is not None and remb < rate * REMB_MARGIN and loss >= REMB_LOSSY
        bad = loss > DOWN_LOSS or starved
        clean = loss < UP_LOSS
        self.bad_since = (self.bad_since if self.bad_since is not None else now) if bad else None
        self.clean_since = (self.clean_since if self.clean_since is not None else now) if clean else None
        i = LADDER.index(self.rendition) if self.rendition in LADDER else len(LADDER) - 1
        wait = AUDIO_AFTER if i + 1 == len(LADDER) - 1 else DOWN_AFTER
        if self.bad_since is not None and now - self.bad_since >= wait:
            if i + 1 < len(LADDER):
                return self._switch(LADDER[i + 1], now)
        elif self.clean_since is not None and now - self.clean_since >= UP_AFTER and i > 0:
            up = LADDER[i - 1]
            if remb is None or remb >= RENDITION_BITRATE[up] * UP_HEADROOM:
                return self._switch(up, now)
        return self.rendition

    def _switch(self, rendition: str, now: float) -> str:
        self.rendition = rendition
        self.since = now
        self.bad_since = self.clean_since = None
        self.switches += 1
        return rendition
