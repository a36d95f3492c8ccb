"""The process's H.264 encoder choice (mcu.compose.renditions.h264_encoder): GIAOBAN_H264_ENCODER,
h264_nvenc where it opens, libx264 otherwise. These run where no NVIDIA driver is (h264_nvenc is
listed by PyAV but fails to open): 'auto' must fall back and still give decodable frames."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from mcu.compose import renditions
from mcu.compose.meter import CpuMeter
from mcu.compose.renditions import Rendition, RenditionEncoder


@pytest.fixture
def choice(monkeypatch):
    """Set the variable and decide again; the process's choice is decided again after the test."""

    def choose(value: str) -> str:
        monkeypatch.setenv(renditions.H264_ENCODER_VARIABLE, value)
        renditions.forget_h264_encoder()
        return renditions.h264_encoder()

    yield choose
    renditions.forget_h264_encoder()


def gpu_encoder_opens() -> bool:
    return renditions._nvenc_failure() is None


def green_picture() -> av.VideoFrame:
    img = np.zeros((144, 256, 3), np.uint8)
    img[:] = (40, 200, 60)
    return av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")


def test_auto_falls_back_to_libx264_without_a_gpu_and_its_frame_decodes(choice, caplog):
    if gpu_encoder_opens():
        pytest.skip("h264_nvenc opens here: the fallback is for machines without a GPU")
    with caplog.at_level(logging.INFO, logger="mcu.compose.renditions"):
        assert choice("auto") == "libx264"
        assert renditions.h264_encoder() == "libx264"  # decided once: no second probe, no second line
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("H.264 encoder: libx264 (h264_nvenc cannot open here")
    encoder = RenditionEncoder(Rendition("h264", 144, 300_000, codec="h264"), 256, 144, 30, 1, CpuMeter())
    frames = encoder.encode(green_picture(), 0, True)
    assert frames and frames[0].keyframe
    decoder = av.CodecContext.create("h264", "r")
    pictures = [p for f in frames for p in decoder.decode(av.Packet(f.data))] + list(decoder.decode(None))
    rgb = pictures[0].to_ndarray(format="rgb24")
    assert np.allclose(rgb.reshape(-1, 3).mean(axis=0), (40, 200, 60), atol=12)


def test_forcing_h264_nvenc_without_a_gpu_is_an_error_that_names_it(choice):
    if gpu_encoder_opens():
        pytest.skip("h264_nvenc opens here")
    with pytest.raises(ValueError, match="GIAOBAN_H264_ENCODER=h264_nvenc, but h264_nvenc cannot open here"):
        choice("h264_nvenc")
    with pytest.raises(ValueError, match="h264_nvenc cannot open here"):  # and so does each H.264 encoder
        RenditionEncoder(Rendition("h264", 144, 300_000, codec="h264"), 256, 144, 30, 1, CpuMeter())


def test_libx264_is_taken_without_trying_the_gpu_and_slice_bounded_renditions_stay_on_it(choice, monkeypatch):
    monkeypatch.setattr(renditions, "_nvenc_failure", lambda: pytest.fail("the GPU was tried"))
    assert choice("libx264") == "libx264"
    renditions.forget_h264_encoder()
    monkeypatch.setenv(renditions.H264_ENCODER_VARIABLE, "h264_nvenc")  # not consulted for mode-0 slices
    RenditionEncoder(Rendition("h264", 144, 300_000, codec="h264", slice_max=1100), 256, 144, 30, 1, CpuMeter())


def test_an_unknown_choice_is_refused_with_the_choices(choice):
    with pytest.raises(ValueError, match="GIAOBAN_H264_ENCODER='x265': use one of auto, libx264, h264_nvenc"):
        choice("x265")
