"""``giaoban-agent``: the room-terminal agent as a command (and a systemd service).

    giaoban-agent --server http://127.0.0.1:8080 --endpoint hg-mv-son-vi --secret-file /etc/giaoban-agent.secret
    giaoban-agent --config /etc/giaoban-agent.yaml

Exit codes: 0 stopped by a signal; 2 bad settings or credentials refused (fix them, do not retry:
the unit file says ``RestartPreventExitStatus=2``); 1 anything else.

After SIGTERM/SIGINT the process exits within ``STOP_BOUND_S`` whatever state it is in (under the
unit's ``TimeoutStopSec=10``, so systemd never has to kill it): a stop stuck past the bound ends
in a forced exit (status 0) with one line naming the threads still running.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from mcu.peer.bounded_stop import cancel_and_wait, exit_deadline

from endpoints.agent.config import ConfigError, load_config
from endpoints.agent.connection import AuthError
from endpoints.agent.oplog import setup_stderr

EXIT_CONFIG = 2
STOP_BOUND_S = 8.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="giaoban-agent", description="giaoban room-terminal agent (commune/district room PC)"
    )
    p.add_argument("--config", help="YAML settings file (keys as below, with underscores)")
    p.add_argument("--server", help="server URL, e.g. https://giaoban.example.vn")
    p.add_argument("--endpoint", help="this room's endpoint id, e.g. hg-mv-son-vi")
    p.add_argument("--secret-file", dest="secret_file", help="file holding the endpoint secret")
    p.add_argument("--video", help="test | file:<path> | v4l2:/dev/video0 | none")
    p.add_argument("--audio", help="test | file:<path> | alsa:default | pulse:default | none")
    p.add_argument("--video-size", dest="video_size", help="e.g. 1280x720")
    p.add_argument("--fps", type=int)
    p.add_argument("--record-dir", dest="record_dir", help="record what the room receives into this folder")
    p.add_argument("--control-port", dest="control_port", type=int, help="local control API port (-1 = off)")
    p.add_argument("--data-dir", dest="data_dir", help="folder for agent.log")
    p.add_argument("--ice-host", dest="ice_host", help="only gather ICE candidates on this address")
    p.add_argument("--log-level", dest="log_level")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    path = args.pop("config")
    try:
        cfg = load_config(path, args)
        cfg.read_secret()
    except ConfigError as exc:
        print(f"giaoban-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_stderr(cfg.log_level)
    try:
        return asyncio.run(_serve(cfg))
    except (AuthError, ConfigError) as exc:
        print(f"giaoban-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


async def _serve(cfg) -> int:
    from endpoints.agent.agent import Agent

    agent = Agent(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()
        exit_deadline(STOP_BOUND_S, 0, "giaoban-agent")

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):
            pass
    stopper = asyncio.ensure_future(stop.wait())
    try:
        # a signal during the first login (a server that accepts but does not answer) stops it too
        starting = asyncio.ensure_future(agent.start())
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await cancel_and_wait([starting], "the agent's start")
            return 0
        starting.result()  # AuthError/ConfigError: exit 2
        waiter = asyncio.ensure_future(agent.wait())
        done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            waiter.result()  # raises AuthError (exit 2) or another error (exit 1)
        waiter.cancel()
        return 0
    finally:
        stopper.cancel()
        await agent.stop()


if __name__ == "__main__":
    sys.exit(main())
