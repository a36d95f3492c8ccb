"""Recording and public live streaming of meetings, fed with already encoded media.

* ``Recorder``: composite VP8 (remuxed) + mixed Opus into crash-safe WebM segments, one final
  WebM with the meeting's metadata on stop (``recover()`` after a crash).
* ``HlsWriter``: live HLS, MPEG-TS segments of the H.264 rendition + AAC, rolling playlist.
* ``RecordingStore``: list, delete, recover, retention sweep.
* ``RecordingService``: per-meeting recorders/streams, connected to the media core with
  ``connect_media``; used by ``signaling.api.recordings``.
"""

from mcu.record.feeds import AudioFeed, Timeline, opus_head
from mcu.record.hls import HlsWriter
from mcu.record.recorder import Recorder, finalise, recover
from mcu.record.service import AlreadyRunning, NotRunning, RecordingService
from mcu.record.store import RecordingStore

__all__ = [
    "AlreadyRunning",
    "AudioFeed",
    "HlsWriter",
    "NotRunning",
    "Recorder",
    "RecordingService",
    "RecordingStore",
    "Timeline",
    "finalise",
    "opus_head",
    "recover",
]
