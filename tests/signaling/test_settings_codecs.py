"""The server setting ``encode_codecs`` (#13): what the media node may encode, checked where it is
written (file:line) and upper-cased; the default lets the node encode both codecs."""

from __future__ import annotations

import pytest

from signaling.settings import Settings, SettingsError, load_settings
from tests.support.harness import start_node


def test_the_default_encodes_both_codecs():
    assert load_settings(None).encode_codecs == ["VP8", "H264"]


def test_a_file_may_allow_one_codec_in_any_case(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text("port: 8080\nencode_codecs: [h264]\n", encoding="utf-8")
    assert load_settings(path).encode_codecs == ["H264"]


@pytest.mark.parametrize(
    "value, words",
    [
        ("[VP8, AV1]", "one or both of VP8 and H264"),
        ("[]", "one or both of VP8 and H264"),
        ("[VP8, vp8]", "each once"),
        ("[[VP8]]", "one or both of VP8 and H264"),
        ("VP8", "encode_codecs must be list, got str"),
    ],
)
def test_a_wrong_value_names_the_file_and_line(tmp_path, value, words):
    path = tmp_path / "server.yaml"
    path.write_text(f"port: 8080\n\nencode_codecs: {value}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}:3: ") and words in str(err.value), str(err.value)


def test_a_value_set_in_code_is_checked_too():
    with pytest.raises(SettingsError, match="encode_codecs"):
        Settings(encode_codecs=["MJPEG"]).validate()


@pytest.mark.integration
async def test_the_media_node_gets_the_setting(tmp_path):
    node = await start_node(tmp_path / "data", media="local", encode_codecs=["h264"])
    try:
        assert node.ctx.media.encode_codecs == ("H264",)
        status, view = await node.call("GET", "/api/v1/cluster")  # what the console shows operators
        assert status == 200 and view["encode_codecs"] == ["H264"], view
    finally:
        await node.stop()
