"""The room-terminal agent: a headless aiortc client for commune/district room PCs.

It logs in with the endpoint's credentials, keeps a WebSocket to the server, joins every meeting
it is invited to when the scheduler opens it, sends camera + microphone, counts/records what it
receives, obeys chair mutes, offers raise-hand through a local control API, reconnects by itself
and writes an operator log. Entry point: ``giaoban-agent`` (``endpoints.agent.cli:main``).
"""

from endpoints.agent.agent import Agent
from endpoints.agent.config import AgentConfig, ConfigError, load_config
from endpoints.agent.connection import AuthError

__all__ = ["Agent", "AgentConfig", "AuthError", "ConfigError", "load_config"]
