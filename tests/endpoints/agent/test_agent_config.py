"""Bad settings and refused credentials give a clear message and exit code 2 (systemd does not loop)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from endpoints.agent import AuthError, ConfigError, load_config
from endpoints.agent.cli import main
from tests.support.agents import make_agent

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


async def run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "endpoints.agent.cli",
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, (out + err).decode()


@pytest.mark.integration
async def test_unknown_endpoint_and_wrong_secret_exit_2(node, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("not-the-secret\n")
    common = [
        "--server",
        node.url,
        "--secret-file",
        str(secret),
        "--data-dir",
        str(tmp_path / "d"),
        "--control-port",
        "-1",
        "--video",
        "none",
        "--audio",
        "none",
    ]
    (code, text), (code2, text2) = await asyncio.gather(
        run_cli("--endpoint", "hg-khong-co", *common), run_cli("--endpoint", "hg-mv-meo-vac", *common)
    )
    assert code == 2, text
    assert "endpoint hg-khong-co" in text and "refused the login (401)" in text
    assert code2 == 2, text2
    # never issued: the same answer as an unknown id, so a stranger cannot tell which ids exist
    assert "endpoint hg-mv-meo-vac" in text2 and "unknown endpoint id 'hg-mv-meo-vac' or wrong secret" in text2

    await node.endpoint_token("hg-mv-meo-vac")  # issued now, but the file holds a wrong one
    agent = await make_agent(node, tmp_path, "hg-mv-meo-vac", start=False, secret="wrong", secret_file="")
    with pytest.raises(AuthError, match="hg-mv-meo-vac.*wrong secret"):
        await agent.start()
    await agent.stop()


def test_bad_settings_name_the_problem(tmp_path, capsys):
    yaml_file = tmp_path / "agent.yaml"
    yaml_file.write_text(
        "server: http://127.0.0.1:1\nendpoint: hg-mv-meo-vac\nsecret_file: /nonexistent\ncamera: v4l2\n"
    )
    assert main(["--config", str(yaml_file)]) == 2
    assert f"{yaml_file}:4: unknown key 'camera'" in capsys.readouterr().err

    assert (
        main(
            [
                "--server",
                "http://127.0.0.1:1",
                "--endpoint",
                "hg-mv-meo-vac",
                "--secret-file",
                str(tmp_path / "missing"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "secret_file" in err and "missing" in err and "cannot read" in err

    with pytest.raises(ConfigError, match="server must be an http"):
        load_config(None, {"server": "127.0.0.1:8080", "endpoint": "x", "secret": "s"})
    with pytest.raises(ConfigError, match="video source 'webcam'"):
        load_config(None, {"server": "http://h", "endpoint": "x", "secret": "s", "video": "webcam"})
    with pytest.raises(ConfigError, match="needs a path or device"):
        load_config(None, {"server": "http://h", "endpoint": "x", "secret": "s", "audio": "alsa:"})
    cfg = load_config(
        None, {"server": "https://gb.example.vn/base/, http://10.0.0.2:8080", "endpoint": "x", "secret": "s"}
    )
    assert [cfg.ws_url(s) for s in cfg.servers] == ["wss://gb.example.vn/base/ws", "ws://10.0.0.2:8080/ws"]
    with pytest.raises(ConfigError, match="'ftp://b'"):
        load_config(None, {"server": "http://a, ftp://b", "endpoint": "x", "secret": "s"})


@pytest.mark.integration
async def test_cli_runs_as_a_service_joins_and_stops_on_sigterm(node, tmp_path):
    """The real command: joins the open meeting by itself, writes its log, SIGTERM -> leave, exit 0."""
    import signal

    import aiohttp

    from tests.support.waiting import until_async
    from tests.endpoints.agent.test_agent_join import DISTRICT, live_ids
    from tests.support.harness import free_port

    ep = "hg-mv-son-vi"
    await node.endpoint_token(ep)
    meeting = await node.schedule(chair=DISTRICT, invited=[f"ep:{ep}"])
    (tmp_path / "secret").write_text(node.secrets[ep])
    port = free_port()
    conf = tmp_path / "agent.yaml"
    conf.write_text(
        f"server: {node.url}\nendpoint: {ep}\nsecret_file: {tmp_path / 'secret'}\n"
        f"video: none\naudio: none\ncontrol_port: {port}\ndata_dir: {tmp_path / 'data'}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "endpoints.agent.cli",
        "--config",
        str(conf),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def in_meeting() -> bool:
            return ep in await live_ids(node, meeting["id"])

        await until_async(in_meeting, 15, what="the agent process joined")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                status = await resp.json()
        assert status["meeting"]["id"] == meeting["id"] and status["name"] == node.ctx.directory.get(ep).name
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()
        assert "Đã vào cuộc họp Giao ban thử nghiệm (joined)" in err.decode()  # stderr = journald

        async def gone() -> bool:
            return ep not in await live_ids(node, meeting["id"])

        await until_async(gone, 5, what="the server saw the terminal leave")
        assert "(agent stopped)" in (tmp_path / "data" / "agent.log").read_text(encoding="utf-8")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.integration
async def test_control_port_in_use_is_a_config_error(node, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        agent = await make_agent(node, tmp_path, "hg-mv-lung-pu", start=False, control_port=port)
        try:
            with pytest.raises(ConfigError, match=f"control_port {port}.*cannot listen"):
                await agent.start()
        finally:
            await agent.stop()
