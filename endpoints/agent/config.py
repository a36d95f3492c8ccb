"""Room-terminal agent settings: defaults -> YAML file (unknown keys rejected, file:line) -> CLI -> validate.

Example ``/etc/giaoban-agent.yaml``::

    server: https://giaoban.hagiang.gov.vn
    endpoint: hg-mv-son-vi
    secret_file: /etc/giaoban-agent.secret
    video: v4l2:/dev/video0          # test | file:<path> | v4l2:<device> | none
    audio: alsa:default              # test | file:<path> | alsa:<device> | pulse:<device> | none
    screen: v4l2:/dev/video2         # the shared document: none | file:<path> | v4l2:<device> | testsrc:<colour>
    record_dir: /var/lib/giaoban-agent/recordings
    control_port: 8765
    data_dir: /var/lib/giaoban-agent
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

VIDEO_KINDS = ("test", "file", "v4l2", "none")
AUDIO_KINDS = ("test", "file", "alsa", "pulse", "none")
SCREEN_KINDS = ("none", "file", "v4l2", "testsrc")


class ConfigError(ValueError):
    """A setting the operator must fix; the message names the file/line or the flag."""


@dataclass
class AgentConfig:
    server: str = ""  # http(s)://host:port of the giaoban server; several nodes: comma-separated, tried in turn
    endpoint: str = ""  # endpoint id from the directory, e.g. hg-mv-son-vi
    secret: str = ""  # the endpoint secret (prefer secret_file)
    secret_file: str = ""  # a file holding the secret (first line)
    video: str = "test"  # camera source
    audio: str = "test"  # microphone source
    screen: str = "none"  # second picture shared as slides (document camera, HDMI capture): see SCREEN_KINDS
    video_size: str = "640x360"
    fps: int = 15
    record_dir: str = ""  # record what the terminal receives here ("" = do not record)
    control_host: str = "127.0.0.1"
    control_port: int = 8765  # local control API (0 = any free port; -1 = off)
    data_dir: str = "var/agent"  # agent.log lives here
    ice_host: str = ""  # pin ICE host candidates to this address ("" = every interface)
    ping_interval_s: float = 10.0  # WS ping; no message for 2.5x this = dead path
    backoff_min_s: float = 0.5
    backoff_max_s: float = 10.0
    join_timeout_s: float = 10.0  # joined / answer not received -> rejoin
    log_level: str = "info"

    # --- derived ---------------------------------------------------------------------------------
    @property
    def servers(self) -> list[str]:
        return [s.strip().rstrip("/") for s in self.server.split(",") if s.strip()]

    @staticmethod
    def ws_url(server: str) -> str:
        u = urlparse(server)
        scheme = "wss" if u.scheme == "https" else "ws"
        return f"{scheme}://{u.netloc}{u.path.rstrip('/')}/ws"

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.video_size.lower().split("x")
        return int(w), int(h)

    def read_secret(self) -> str:
        if self.secret:
            return self.secret
        try:
            text = Path(self.secret_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"secret_file {self.secret_file}: cannot read it ({exc.strerror})") from None
        secret = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not secret:
            raise ConfigError(f"secret_file {self.secret_file} is empty; put endpoint {self.endpoint}'s secret in it")
        return secret

    def validate(self, where: str = "settings") -> "AgentConfig":
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"{where}: {msg}")

        if not self.servers:
            raise bad("server (the giaoban server's http:// or https:// URL) is required")
        for server in self.servers:
            u = urlparse(server)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise bad(
                    f"server must be an http:// or https:// URL (comma-separated for several nodes), got {server!r}"
                )
        if not self.endpoint:
            raise bad("endpoint (the endpoint id, e.g. hg-mv-son-vi) is required")
        if not self.secret and not self.secret_file:
            raise bad(f"endpoint {self.endpoint}: give its secret with secret_file (or secret)")
        _check_source("video", self.video, VIDEO_KINDS, bad)
        _check_source("audio", self.audio, AUDIO_KINDS, bad)
        _check_screen(self.screen, bad)
        try:
            w, h = self.size
        except ValueError:
            raise bad(f"video_size must look like 640x360, got {self.video_size!r}") from None
        if not (16 <= w <= 3840 and 16 <= h <= 2160) or w % 2 or h % 2:
            raise bad(f"video_size {self.video_size} is out of range (even sizes 16x16..3840x2160)")
        if not 1 <= self.fps <= 60:
            raise bad(f"fps must be 1..60, got {self.fps}")
        if not -1 <= self.control_port < 65536:
            raise bad(f"control_port must be 0..65535 (or -1 = off), got {self.control_port}")
        if self.ping_interval_s <= 0 or self.backoff_min_s <= 0 or self.backoff_max_s < self.backoff_min_s:
            raise bad("ping_interval_s and backoff_min_s must be > 0 and backoff_max_s >= backoff_min_s")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise bad(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        return self


def _check_source(what: str, value: str, kinds: tuple[str, ...], bad) -> None:
    kind, _, arg = value.partition(":")
    if kind not in kinds:
        raise bad(
            f"{what} source {value!r} is not one of: {', '.join(k + (':<...>' if k not in ('test', 'none') else '') for k in kinds)}"
        )
    if kind in ("file", "v4l2", "alsa", "pulse") and not arg:
        raise bad(f"{what} source {value!r} needs a path or device after '{kind}:'")
    if kind == "file" and not Path(arg).is_file():
        raise bad(f"{what} source file {arg} does not exist")


def _check_screen(value: str, bad) -> None:
    """The shared-document source; the message is Vietnamese first and names the key."""
    kind, _, arg = value.partition(":")
    forms = "none | file:<đường dẫn> | v4l2:/dev/videoN | testsrc:<màu>"
    if kind not in SCREEN_KINDS:
        raise bad(
            f"screen (nguồn chia sẻ tài liệu) {value!r} không hợp lệ; dùng {forms} "
            f"(screen source {value!r} is not one of none, file:<path>, v4l2:<device>, testsrc:<colour>)"
        )
    if kind == "none":
        return
    if not arg:
        raise bad(
            f"screen {value!r}: thiếu đường dẫn, thiết bị hoặc màu sau '{kind}:' (screen needs a value after '{kind}:')"
        )
    if kind == "file" and not Path(arg).is_file():
        raise bad(f"screen: không có tệp {arg} (screen source file {arg} does not exist)")
    if kind == "testsrc" and parse_colour(arg) is None:
        raise bad(
            f"screen: màu {arg!r} không hợp lệ; dùng tên ({', '.join(COLOURS)}) hoặc #rrggbb "
            f"(screen testsrc colour {arg!r}: a name or #rrggbb)"
        )


COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "white": (235, 235, 235),
    "black": (16, 16, 16),
    "yellow": (230, 200, 30),
}


def parse_colour(text: str) -> tuple[int, int, int] | None:
    """A testsrc colour: a name from COLOURS or #rrggbb; None when it is neither."""
    text = text.strip().lower()
    if text in COLOURS:
        return COLOURS[text]
    if len(text) == 7 and text[0] == "#":
        try:
            return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
        except ValueError:
            return None
    return None


def load_config(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Defaults, then the YAML file, then overrides (None values are ignored), validated."""
    cfg = AgentConfig()
    where = "command line"
    if path is not None:
        where = str(path)
        _apply_yaml(cfg, Path(path))
    known = {f.name for f in fields(AgentConfig)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            setattr(cfg, key, value)
    return replace(cfg).validate(where)


def _apply_yaml(cfg: AgentConfig, path: Path) -> None:
    file = str(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read settings ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{file}:{(mark.line + 1) if mark else 0}: malformed YAML: {exc}") from None
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{file}:{root.start_mark.line + 1}: settings must be a mapping")
    known = {f.name: f for f in fields(AgentConfig)}
    for key_node, value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in known:
            raise ConfigError(f"{file}:{line}: unknown key {key!r}; allowed: {', '.join(sorted(known))}")
        value = yaml.safe_load(yaml.serialize(value_node))
        want = type(getattr(cfg, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{file}:{line}: {key} must be {want.__name__}, got {type(value).__name__}")
        setattr(cfg, key, value)
