"""Opus decoding with packet-loss concealment and in-band FEC, straight from libopus (ctypes).

libavcodec (and so PyAV) hides both: it cannot decode "nothing" (PLC) nor the LBRR copy of a
lost frame carried by the next packet (FEC). libopus does both through ``opus_decode_float``:
``data=NULL`` runs PLC, ``decode_fec=1`` with the *next* packet rebuilds the lost frame.

The library is the system's ``libopus.so.0`` (Debian: libopus0) or, failing that, the copy
bundled in PyAV's wheel (``av.libs``). ``available()`` is False when neither loads; the mixer
then falls back to PyAV decoding with repeat-and-fade concealment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

import numpy as np

from mcu.audio.codec import opus_has_lbrr

_lib: ctypes.CDLL | None = None
_tried = False


def _candidates() -> list[str]:
    found = []
    name = ctypes.util.find_library("opus")
    if name:
        found.append(name)
    try:
        import av

        libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
        found += sorted(glob.glob(os.path.join(libs, "libopus*.so*")))
    except ImportError:
        pass
    return found


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.opus_decode_float.restype = ctypes.c_int
            lib.opus_decode_float.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int32,
                ctypes.POINTER(ctypes.c_float),
                ctypes.c_int,
                ctypes.c_int,
            ]
            lib.opus_decoder_destroy.restype = None
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            lib.opus_get_version_string.restype = ctypes.c_char_p
        except (OSError, AttributeError):
            continue
        _lib = lib
        break
    return _lib


def available() -> bool:
    return _load() is not None


def version() -> str | None:
    lib = _load()
    return lib.opus_get_version_string().decode() if lib is not None else None


class LibopusDecoder:
    """Mono float32 decoder: ``decode(packet)``, ``conceal(next_packet)`` (FEC if the next
    packet is given and carries LBRR, else PLC)."""

    MAX_SAMPLES = 5760  # 120 ms at 48 kHz, the longest Opus packet

    def __init__(self, sample_rate: int = 48000):
        lib = _load()
        if lib is None:
            raise RuntimeError("libopus not found")
        err = ctypes.c_int(0)
        handle = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(err))
        if err.value != 0 or not handle:
            raise RuntimeError(f"opus_decoder_create failed ({err.value})")
        self._lib, self._handle = lib, handle
        self._buf = np.zeros(self.MAX_SAMPLES, dtype=np.float32)
        self._ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self.calls = 0
        self.fec_frames = 0
        self.plc_frames = 0

    def _run(self, data: bytes | None, samples: int, fec: int) -> np.ndarray | None:
        if self._handle is None:
            return None
        n = self._lib.opus_decode_float(self._handle, data, len(data) if data else 0, self._ptr, samples, fec)
        return self._buf[:n].copy() if n > 0 else None

    def decode(self, payload: bytes) -> np.ndarray | None:
        self.calls += 1
        return self._run(payload, self.MAX_SAMPLES, 0)

    def conceal(self, samples: int, next_payload: bytes | None = None) -> np.ndarray | None:
        """One lost frame of ``samples``: rebuilt from the LBRR of ``next_payload`` when that
        packet carries it, else extrapolated by PLC."""
        if next_payload and opus_has_lbrr(next_payload):
            self.fec_frames += 1
            return self._run(next_payload, samples, 1)
        self.plc_frames += 1
        return self._run(None, samples, 0)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.opus_decoder_destroy(handle)

    def __del__(self) -> None:
        self.close()
