"""What the fuzz layer found, pinned as plain tests against a real node (each failed before its fix):
a second hello, a refused chair action that was audited anyway, offers aiortc took but could not
answer or connect, and settings files that raised something other than SettingsError."""

from __future__ import annotations

import pytest

from signaling.settings import SettingsError, load_settings
from tests.support.harness import WsClient, tracebacks
from tests.support.media_clients import offer_sdp


async def joined(node, token: str) -> tuple[WsClient, dict]:
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    ws = await WsClient.connect(node, token)
    await ws.expect("welcome")
    await ws.send("join", meeting_id=meeting["id"])
    await ws.expect("joined")
    return ws, meeting


async def test_a_second_hello_is_bad_request(node, caplog):
    ws, _ = await joined(node, node.operator_token)  # joined: it reached a handler table without hello
    try:
        await ws.send("hello", token=node.operator_token)
        err = await ws.expect("error")
        assert err["code"] == "bad_request" and "first message" in err["message"], err
    finally:
        await ws.close()
    assert not tracebacks(caplog)


async def test_a_refused_chair_action_is_not_audited(node):
    ws, meeting = await joined(node, node.operator_token)
    try:
        before = await node.ctx.store.list("meetings"), await _audit(node)
        await ws.send("record", on=True)  # refused: this node has no media
        err = await ws.expect("error")
        assert err["code"] == "unavailable", err
        await ws.send("ping")
        await ws.expect("pong")
        assert (await node.ctx.store.list("meetings"), await _audit(node)) == before
        await ws.send("lock", locked=True)  # a chair action that is done is audited, after it is done
        await ws.expect("locked")
        assert [e["action"] for e in await _audit(node)][-1:] == ["lock"]
    finally:
        await ws.close()


async def _audit(node) -> list[dict]:
    from datetime import datetime

    from signaling.auth.audit import VN

    return await node.ctx.store.read_log(f"audit:{datetime.now(VN):%Y-%m-%d}")


def bundle_naming(sdp: str, group: str) -> str:
    return "\r\n".join(group if line.startswith("a=group:BUNDLE") else line for line in sdp.split("\r\n"))


async def test_an_offer_bundling_an_unknown_mid_is_refused_on_ws_and_whip(media_node, caplog):
    node = media_node
    pc, sdp = await offer_sdp()
    await pc.close()
    broken = bundle_naming(sdp, "a=group:BUNDLE 9 0 1")  # aiortc left lines 0 and 1 without transport
    ws, meeting = await joined(node, await node.endpoint_token("hg-meo-vac"))
    try:
        await ws.send("offer", sdp=broken)
        err = await ws.expect("error", timeout=10)
        assert err["code"] == "offer_refused" and "BUNDLE" in err["message"], err
    finally:
        await ws.close()
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "OBS", "role": "chair"}
    )
    async with node.http.post(
        f"{node.url}/whip/{meeting['id']}",
        data=broken.encode(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {link['token']}"},
    ) as resp:
        assert resp.status == 400 and "BUNDLE" in (await resp.json())["error"]["message"]
    assert not tracebacks(caplog)


async def test_an_offer_after_a_refused_one_is_answered_not_internal(media_node, caplog):
    """aiortc half-applies an offer it then refuses (here: no a=setup); the next offer took
    setRemoteDescription but failed in setLocalDescription ('None is not in list'): internal.
    Now the refused offer's peer is dropped and the next offer on that WebSocket is answered
    (tests/signaling/test_refused_offer.py checks that its media flows)."""
    node = media_node
    pc, sdp = await offer_sdp()
    await pc.close()
    ws, _ = await joined(node, await node.endpoint_token("hg-meo-vac"))
    try:
        await ws.send("offer", sdp=sdp.replace("a=setup:actpass\r\n", "", 1))
        assert (await ws.expect("error", timeout=10))["code"] == "offer_refused"
        await ws.send("offer", sdp=sdp)
        assert (await ws.expect("answer", timeout=10))["sdp"].startswith("v=0")
    finally:
        await ws.close()
    ws, _ = await joined(node, await node.endpoint_token("hg-mv-lung-pu"))  # a new connection is served
    try:
        await ws.send("offer", sdp=sdp)
        assert (await ws.expect("answer", timeout=10))["sdp"].startswith("v=0")
    finally:
        await ws.close()
    assert not tracebacks(caplog)


@pytest.mark.parametrize(
    "data",
    [
        b"host: \xed\xa0\x80\n",  # not UTF-8
        b"? [a, b]\n: c\n",  # a key that is not a name
        b"host:\n",  # an empty value
        b"port: !!python/object/apply:os.system [true]\n",
    ],
)
def test_settings_files_give_settings_errors(tmp_path, data):
    path = tmp_path / "settings.yaml"
    path.write_bytes(data)
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value).startswith(str(path))
