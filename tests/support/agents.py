"""Start room-terminal agents against a test node (127.0.0.1 only, small test pattern)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from endpoints.agent import Agent, load_config


async def make_agent(
    node: Any, tmp_path: Path, endpoint: str, server: str | None = None, start: bool = True, **overrides: Any
) -> Agent:
    if endpoint not in node.secrets:
        await node.endpoint_token(endpoint)  # the operator issues the endpoint's secret
    secret_file = tmp_path / f"{endpoint}.secret"
    secret_file.write_text(node.secrets.get(endpoint, "") + "\n", encoding="utf-8")
    settings = dict(
        server=server or node.url,
        endpoint=endpoint,
        secret_file=str(secret_file),
        video="test",
        audio="test",
        video_size="160x120",
        fps=10,
        control_port=0,
        data_dir=str(tmp_path / endpoint),
        ice_host="127.0.0.1",
        ping_interval_s=1.0,
    )
    settings.update(overrides)
    agent = Agent(load_config(None, settings))
    if start:
        await agent.start()
    return agent
