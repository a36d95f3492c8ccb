"""``giaoban`` command line: serve, check-config, credentials, operator."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import logging
import os
import sys

from endpoints.directory import DirectoryError, load_directory
from signaling import addresses
from signaling.logs import setup_logging
from signaling.store.redis_store import redact as redact_url
from signaling.settings import SettingsError, load_settings


def _settings(args):
    overrides = {
        k: getattr(args, k, None)
        for k in ("host", "port", "data_dir", "store", "directory", "media", "public_url", "node_id", "media_url")
    }
    if getattr(args, "media_serves", None) is not None:
        overrides["media_serves"] = [x.strip() for x in args.media_serves.split(",") if x.strip()]
    if getattr(args, "log_format", None):
        overrides["log_format"] = args.log_format
    return load_settings(args.config, overrides)


def cmd_serve(args) -> int:
    from signaling.app import build_context, make_app
    from signaling.guard.connection_limits import run_app

    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ctx = loop.run_until_complete(build_context(settings))
    print(
        f"giaoban: serving {ctx.directory.name} ({len(ctx.directory)} endpoints) on {settings.public_url} "
        f"store={redact_url(settings.store)}",
        file=sys.stderr,
        flush=True,
    )  # no Redis password
    announce(settings, addresses.interface_addresses())
    app = make_app(ctx)
    app.on_shutdown.insert(0, _stop_deadline)
    # web.run_app with a site that limits open connections per address (connection_limits.py)
    run_app(app, settings.host or None, settings.port, loop, shutdown_timeout=10.0)
    return 0


def advertised(settings) -> addresses.Advertised:
    sip = settings.sip
    transports = "/".join(t for t in sip.transports if t != "tls")
    tls = f", tls on {sip.port + 1}" if "tls" in sip.transports else ""
    return addresses.Advertised(
        host=settings.host,
        port=settings.port,
        public_url=settings.public_url,
        media=settings.ice_host if settings.media == "local" else [],
        public_ip=settings.public_ip if settings.media == "local" else [],
        sip=f"{sip.host}:{sip.port} {transports}{tls}, domain {sip.domain}" if sip.enabled else "",
        sip_host=sip.host,
    )


def announce(settings, interfaces: list[str]) -> None:
    """Print and log what the server advertises, and a warning for each setting that leaves media
    or join links unreachable from other machines (#16)."""
    adv = advertised(settings)
    log = logging.getLogger("giaoban.serve")
    for line in addresses.describe(adv):
        print(f"giaoban: {line}", file=sys.stderr, flush=True)
        log.info(line)
    for line in addresses.warnings(adv, interfaces):
        print(f"giaoban: {line}", file=sys.stderr, flush=True)
        log.warning(line)


# After SIGTERM/SIGINT `giaoban serve` exits within this bound whatever state it is in: requests get
# shutdown_timeout (10 s), media peers 10 s to close, then a forced exit (status 0) naming the
# threads still running (an aiortc decoder thread of a close cut short would hold the exit forever).
SERVE_STOP_BOUND_S = 25.0


async def _stop_deadline(app) -> None:
    from mcu.peer.bounded_stop import exit_deadline  # no aiortc: fine on a signaling-only node

    exit_deadline(SERVE_STOP_BOUND_S, 0, "giaoban serve")


def cmd_check(args) -> int:
    settings = _settings(args)
    d = load_directory(settings.directory)
    settings.check_against(d)
    tiers: dict[str, int] = {}
    for ep in d:
        tiers[str(ep.tier)] = tiers.get(str(ep.tier), 0) + 1
    print(f"{settings.directory}: {d.name}: {len(d)} endpoints " + ", ".join(f"{k} {v}" for k, v in tiers.items()))
    return 0


async def _with_auth(settings, action):
    from signaling.app import build_context

    settings.media = "none"
    ctx = await build_context(settings, serving=False)
    try:
        return await action(ctx)
    finally:
        await ctx.store.stop()


def cmd_credentials(args) -> int:
    settings = _settings(args)

    async def issue(ctx):
        from signaling.ws.registry import MEETING_EVENTS

        endpoints = ctx.directory.select(args.selectors)
        rows = []
        for ep in endpoints:
            rows.append((ep.id, ep.name, await ctx.auth.issue_credentials(ep.id)))
            # nodes sharing a Redis store end its sessions now; a SQLite node at its next read of the
            # revocation marker (every 0.5 s, signaling/app.py)
            await ctx.store.publish(MEETING_EVENTS, await ctx.auth.revoke("endpoint", ep.id))
        out = _secret_file(args.out) if args.out else sys.stdout
        writer = csv.writer(out)
        writer.writerow(["endpoint_id", "name", "secret"])
        writer.writerows(rows)
        if args.out:
            out.close()
            print(
                f"issued {len(rows)} secrets into {args.out}; hand them to the rooms and delete the file",
                file=sys.stderr,
            )
        return 0

    return asyncio.run(_with_auth(settings, issue))


def _secret_file(path: str):
    """A new file only its owner can read (the CSV holds every secret it lists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT keeps an existing file's mode
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def cmd_operator(args) -> int:
    settings = _settings(args)
    if args.password_file:  # not --password: a command line is visible to every user in `ps`
        source = sys.stdin if args.password_file == "-" else open(args.password_file, encoding="utf-8")
        with source:
            password = source.readline().rstrip("\r\n")
        if not password:
            print(f"giaoban: {args.password_file}: the first line (the password) is empty", file=sys.stderr)
            return 2
    else:
        password = args.password or getpass.getpass(f"password for {args.username}: ")

    async def add(ctx):
        await ctx.auth.set_operator(args.username, password, args.name or args.username)
        print(f"operator {args.username} saved", file=sys.stderr)
        return 0

    return asyncio.run(_with_auth(settings, add))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="giaoban", description="4-tier online briefing backend")
    p.add_argument("--config", help="server settings YAML (defaults apply when omitted)")
    p.add_argument("--directory", help="endpoint directory YAML (default config/hagiang.yaml)")
    p.add_argument("--data-dir", dest="data_dir", help="folder for the embedded store and generated secrets")
    p.add_argument("--store", help="sqlite:<path> (default) or redis://host:port/db")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a signaling node (embedded store unless --store redis://)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--public-url", dest="public_url")
    s.add_argument("--media", choices=["local", "none"])
    s.add_argument("--node-id", dest="node_id", help="this node's name in the cluster (default <hostname>-<port>)")
    s.add_argument("--media-url", dest="media_url", help="how other nodes reach this media node (default: public URL)")
    s.add_argument(
        "--media-serves",
        dest="media_serves",
        metavar="IDS",
        help="comma-separated endpoint ids whose subtrees this media node serves as a cascade edge",
    )
    s.add_argument("--log-format", dest="log_format", choices=["json", "text"])
    s.set_defaults(func=cmd_serve)
    c = sub.add_parser("check-config", help="validate the settings and the directory, print a summary")
    c.set_defaults(func=cmd_check)
    cr = sub.add_parser("credentials", help="issue (or rotate) endpoint secrets; prints CSV")
    cr.add_argument("selectors", nargs="+", help="e.g. tier:commune@hg-meo-vac ep:hg-dv-lung-cu")
    cr.add_argument("--out", help="write the CSV here instead of stdout")
    cr.set_defaults(func=cmd_credentials)
    op = sub.add_parser("operator", help="add an operator or change its password")
    op.add_argument("username")
    op.add_argument("--name")
    op.add_argument(
        "--password", help="prompted for when omitted (visible to other users in ps: prefer --password-file)"
    )
    op.add_argument(
        "--password-file", dest="password_file", help="read the password from this file's first line (- for stdin)"
    )
    op.set_defaults(func=cmd_operator)
    return p


def main(argv: list[str] | None = None) -> int:
    # everything giaoban writes (store, WAL, generated passwords, secrets CSVs, recordings) is for
    # its own user only: the store holds the key that signs admin tokens
    os.umask(0o077)
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, DirectoryError) as exc:
        print(f"giaoban: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
