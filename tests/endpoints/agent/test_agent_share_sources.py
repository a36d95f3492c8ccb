"""The ``screen`` setting (#17): what an operator reads when it is wrong, and the shared sources."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from endpoints.agent import ConfigError, load_config
from endpoints.agent.sources import open_screen, retire

BASE = dict(server="http://127.0.0.1:8080", endpoint="hg-mv-son-vi", secret="s")


@pytest.mark.parametrize(
    "value, says",
    [
        ("hdmi", "screen (nguồn chia sẻ tài liệu) 'hdmi' không hợp lệ"),
        ("v4l2:", "screen 'v4l2:': thiếu đường dẫn"),
        ("file:/no/such/slides.webm", "screen: không có tệp /no/such/slides.webm"),
        ("testsrc:mauve", "screen: màu 'mauve' không hợp lệ"),
    ],
)
def test_a_wrong_screen_setting_is_named_in_vietnamese_first(tmp_path, value, says):
    path = tmp_path / "agent.yaml"
    path.write_text("".join(f"{k}: '{v}'\n" for k, v in {**BASE, "screen": value}.items()), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {says}"), str(err.value)
    assert "(screen" in str(err.value)  # English after it


def test_good_screen_settings_load():
    for value in ("none", "v4l2:/dev/video2", "testsrc:red", "testsrc:#00ff00"):
        assert load_config(None, {**BASE, "screen": value}).screen == value
    assert load_config(None, BASE).screen == "none"


async def test_a_shared_colour_and_file_keep_timestamps_going_after_an_earlier_share(tmp_path):
    red = open_screen("testsrc:#dc1e1e", (64, 48), fps=30)
    frames = [await red.recv() for _ in range(3)]
    rgb = frames[-1].to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    assert np.allclose(rgb, (220, 30, 30), atol=6), rgb
    await retire(red)
    assert red.readyState == "ended" and red.last_pts is not None

    path = tmp_path / "slides.webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    document = open_screen(f"file:{path}", (64, 48), fps=10)
    document.continue_after(red.last_pts)
    try:
        first, second = await document.recv(), await document.recv()
        assert red.last_pts < first.pts < second.pts and first.time_base == fractions.Fraction(1, 90000)
    finally:
        document.stop()
