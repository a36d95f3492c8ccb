"""What LocalMediaNode.start refuses before it starts anything: a GIAOBAN_H264_ENCODER that is none
of its choices is refused at start, naming the variable and the choices, not at the first H.264
encoder (perhaps hours later, in a meeting)."""

from __future__ import annotations

import pytest

from mcu.compose import renditions
from mcu.node import LocalMediaNode


async def test_a_wrong_h264_encoder_setting_is_refused_at_start(monkeypatch):
    monkeypatch.setenv(renditions.H264_ENCODER_VARIABLE, "nvenc")
    node = LocalMediaNode(ice_host=None)
    with pytest.raises(ValueError, match=r"GIAOBAN_H264_ENCODER='nvenc': use one of auto, libx264, h264_nvenc"):
        await node.start()
    monkeypatch.setenv(renditions.H264_ENCODER_VARIABLE, " LibX264 ")  # case and spaces are forgiven
    assert renditions.h264_encoder_setting() == "libx264"
    monkeypatch.delenv(renditions.H264_ENCODER_VARIABLE)
    assert renditions.h264_encoder_setting() == "auto"  # unset: the default
