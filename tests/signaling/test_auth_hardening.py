"""Attacks on logins and tokens (issue #11 items 3, 5, 11, 12, 13) against a real server.

Each test sends what the audit sent and asserts what the caller, the store or the log saw.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest

from signaling.auth import authenticator as auth_module
from tests.support.cluster import flush
from tests.support.harness import ADMIN_PASSWORD, WsClient, start_node

pytestmark = pytest.mark.integration

WRONG = {"username": "admin", "password": "wrong password"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(node, claims: dict) -> str:
    """A token signed with the node's own key (what someone holding the key could mint)."""
    body = _b64(json.dumps(claims).encode())
    key = node.ctx.auth.signer._key
    return f"gb1.{body}.{_b64(hmac.new(key, f'gb1.{body}'.encode(), hashlib.sha256).digest())}"


async def login(node, body: dict, path: str = "/api/v1/auth/login", **kw) -> tuple[int, dict]:
    return await node.call("POST", path, token=None, json=body, **kw)


# --- item 3: throttling ---------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "redis"])
async def any_node(request, tmp_path):
    store = request.getfixturevalue("redis_url") if request.param == "redis" else None
    if store:
        await flush(store)
    n = await start_node(tmp_path / "data", store=store)
    yield n
    await n.stop()
    if store:  # the Redis server is shared by the session: leave no locked-out admin behind
        await flush(store)


async def test_parallel_wrong_logins_get_at_most_the_limit_of_checks(any_node):
    results = await asyncio.gather(*(login(any_node, WRONG) for _ in range(40)))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(401) == auth_module.MAX_FAILURES, statuses
    assert statuses.count(429) == 40 - auth_module.MAX_FAILURES, statuses
    # locked: even the right password is refused now, and the answer says why
    status, body = await login(any_node, {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 429 and "too many failed logins" in body["error"]["message"], body
    assert await any_node.ctx.store.get_ephemeral("login-failures", "operator:admin") == {"count": 10}


async def test_a_success_gives_its_slot_back(node):
    for _ in range(3):
        assert (await login(node, {"username": "admin", "password": ADMIN_PASSWORD}))[0] == 200
    assert (await node.ctx.store.get_ephemeral("login-failures", "operator:admin") or {}).get("count", 0) == 0


async def test_failures_from_one_address_across_names_are_limited(tmp_path):
    n = await start_node(tmp_path / "d", limits={"failed_logins_per_address": 5})
    try:
        for i in range(5):  # a different name each time: no name reaches its own limit
            status, _ = await login(n, {"username": f"guess-{i}", "password": "x"})
            assert status == 401
        # X-Forwarded-For from a peer that is no trusted proxy changes nothing
        status, body = await login(
            n, {"username": "admin", "password": ADMIN_PASSWORD}, headers={"X-Forwarded-For": "203.0.113.9"}
        )
        assert status == 429 and "127.0.0.1" in body["error"]["message"], body
        status, body = await login(n, {"endpoint_id": "hg-meo-vac", "secret": "x"}, "/api/v1/auth/endpoint")
        assert status == 429, body
    finally:
        await n.stop()


async def test_parallel_logins_across_names_from_one_address_get_at_most_its_limit(tmp_path):
    n = await start_node(tmp_path / "d", limits={"failed_logins_per_address": 5})
    try:  # a different name each: only the address can stop them, and it must before scrypt
        results = await asyncio.gather(*(login(n, {"username": f"p{i}", "password": "x"}) for i in range(60)))
        statuses = sorted(s for s, _ in results)
        checked = statuses.count(401)  # were 60: all checked, the count read before any failure
        assert 5 <= checked <= 5 + auth_module.ADDRESS_CONCURRENCY - 1, statuses
        assert statuses.count(429) == 60 - checked, statuses
    finally:
        await n.stop()


async def test_a_province_behind_one_address_logs_in_all_at_once(tmp_path):
    """60 room terminals behind one NAT at 07:50, under a per-address failure limit of 5: none is
    refused (taking a failure slot before every check refused all but the first 5 in flight)."""
    n = await start_node(tmp_path / "d", limits={"failed_logins_per_address": 5})
    try:
        ids = [ep.id for ep in n.ctx.directory.select(["tier:commune"])][:60]
        secrets = {ep: await n.ctx.auth.issue_credentials(ep) for ep in ids}
        results = await asyncio.gather(
            *(login(n, {"endpoint_id": ep, "secret": secrets[ep]}, "/api/v1/auth/endpoint") for ep in ids)
        )
        assert [s for s, _ in results] == [200] * len(ids), [b for s, b in results if s != 200][:3]
    finally:
        await n.stop()


async def test_a_stranger_guessing_a_name_locks_out_only_his_own_address(tmp_path):
    n = await start_node(tmp_path / "d", trusted_proxies=["127.0.0.1"])  # the province's proxy
    try:
        stranger, office = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
        for _ in range(auth_module.MAX_FAILURES):
            assert (await login(n, WRONG, headers=stranger))[0] == 401
        status, body = await login(n, {"username": "admin", "password": ADMIN_PASSWORD}, headers=stranger)
        assert status == 429 and "198.51.100.7" in body["error"]["message"], body
        status, body = await login(n, {"username": "admin", "password": ADMIN_PASSWORD}, headers=office)
        assert status == 200, body  # the real admin, from the office, still gets in
    finally:
        await n.stop()


async def test_unknown_names_cost_one_scrypt_like_a_wrong_password(node, monkeypatch):
    checks: list[str] = []
    real = auth_module.check_secret

    def counting(secret: str, stored: str) -> bool:
        checks.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(auth_module, "check_secret", counting)
    cases = [
        ({"username": "nobody", "password": "p1"}, "/api/v1/auth/login"),
        ({"username": "admin", "password": "p2"}, "/api/v1/auth/login"),
        ({"endpoint_id": "no-such-endpoint", "secret": "p3"}, "/api/v1/auth/endpoint"),
        ({"endpoint_id": "hg-meo-vac", "secret": "p4"}, "/api/v1/auth/endpoint"),
    ]  # no credentials yet
    for body, path in cases:
        assert (await login(node, body, path))[0] == 401
    assert checks == ["p1", "p2", "p3", "p4"]  # one scrypt verification each, found or not


async def test_endpoint_logins_give_one_error_for_unknown_uncredentialed_and_wrong(node):
    await node.endpoint_token("hg-dong-van")  # issues credentials for this one only
    answers = []
    for ep in ("no-such-endpoint", "hg-meo-vac", "hg-dong-van"):
        status, body = await login(node, {"endpoint_id": ep, "secret": "wrong"}, "/api/v1/auth/endpoint")
        answers.append((status, body["error"]["code"], body["error"]["message"].replace(repr(ep), "ID")))
    assert answers[0] == answers[1] == answers[2], answers
    assert answers[0][0] == 401


async def test_nul_in_a_login_name_is_a_400(node):
    status, body = await login(node, {"username": "ad\x00min", "password": "x"})
    assert status == 400 and "username" in body["error"]["message"], body


# --- item 11: one canonical token form; item 5: claims of the wrong type ---------------------------
async def me(node, token: str) -> tuple[int, dict]:
    return await node.call("GET", "/api/v1/me", token=token)


async def test_only_the_canonical_token_spelling_is_accepted(node):
    token = node.operator_token
    assert (await me(node, token))[0] == 200
    head, body, mac = token.split(".")
    variants = [token + "==", token + "=", f"{head}.{body}==.{mac}", f"{head}.{body}.{mac}=", f"{head}.{body}.{mac}A"]
    if "-" in token or "_" in token:  # the standard alphabet's spelling of the same bytes
        variants.append(token.replace("-", "+").replace("_", "/"))
    # the MAC's last character carries 2 unused bits: flip them and it decodes to the same bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    variants += [f"{head}.{body}.{mac[:-1]}{alphabet[(last & ~3) | bits]}" for bits in range(4) if bits != last & 3]
    if "-" not in token and "_" not in token:
        variants.append(f"{head}.{body[:-1]}+.{mac}")
    for bad in variants:
        status, answer = await me(node, bad)
        assert status == 401, (bad, answer)
        assert answer["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "claims, words",
    [
        ({"kind": "operator", "sub": "admin", "exp": "9999999999"}, ["exp", "float", "str"]),
        ({"kind": "operator", "sub": "admin", "exp": 9e99, "iat": "now"}, ["iat"]),
        ({"kind": "operator", "sub": ["admin"], "exp": 9e99}, ["sub"]),
        ({"kind": 7, "sub": "admin", "exp": 9e99}, ["kind"]),
        ({"kind": "operator", "sub": "admin"}, ["exp"]),
        (["operator", "admin"], ["claims"]),
    ],
)
async def test_signed_claims_of_the_wrong_type_are_a_401_naming_the_field(node, claims, words):
    token = forge(node, claims)
    status, body = await me(node, token)
    assert status == 401, body
    for w in words:
        assert w in body["error"]["message"], body
    ws = await WsClient.connect(node, token)
    try:
        err = await ws.expect("error")
        assert err["code"] == "unauthorized" and words[0] in err["message"], err
    finally:
        await ws.close()


# --- item 13: the directory is scoped -------------------------------------------------------------
async def link(node, meeting_id: str, **body) -> str:
    status, answer = await node.call("POST", f"/api/v1/meetings/{meeting_id}/links", json=body)
    assert status == 201, answer
    return answer["token"]


async def test_directory_is_scoped_to_operators_and_to_an_endpoints_subtree(node):
    meeting = await node.schedule("hg-ubnd", ["all"])
    everyone = {ep.id for ep in node.ctx.directory}
    district = {ep.id for ep in node.ctx.directory.subtree("hg-meo-vac")}
    assert 1 < len(district) < len(everyone)

    status, body = await node.call("GET", "/api/v1/directory")
    assert status == 200 and {e["id"] for e in body["endpoints"]} == everyone and body["count"] == 211

    for token in (
        await node.endpoint_token("hg-meo-vac"),
        await link(node, meeting["id"], name="Bí thư", role="chair", endpoint_id="hg-meo-vac"),
    ):
        status, body = await node.call("GET", "/api/v1/directory", token=token)
        assert status == 200 and {e["id"] for e in body["endpoints"]} == district, body
        assert (await node.call("GET", "/api/v1/directory/endpoints/hg-meo-vac", token=token))[0] == 200
        status, body = await node.call("GET", "/api/v1/directory/endpoints/hg-ubnd", token=token)
        assert status == 404 and "hg-ubnd" in body["error"]["message"], body
        status, body = await node.call("POST", "/api/v1/directory/select", token=token, json={"selectors": ["all"]})
        assert status == 200 and set(body["endpoint_ids"]) == district, body

    guest = await link(node, meeting["id"], name="Khách", role="viewer")
    for method, path, kw in (
        ("GET", "/api/v1/directory", {}),
        ("GET", "/api/v1/directory/endpoints/hg-ubnd", {}),
        ("POST", "/api/v1/directory/select", {"json": {"selectors": ["all"]}}),
    ):
        status, body = await node.call(method, path, token=guest, **kw)
        assert status == 403 and "guest link" in body["error"]["message"], (path, body)


async def test_an_endpoint_link_lists_only_its_own_meeting(node):
    """A link made for one meeting must not read the endpoint's whole schedule (outside audit)."""
    shown = await node.schedule(chair="hg-ubnd", invited=["hg-dong-van"], title="Giao ban tuần")
    other = await node.schedule(chair="hg-ubnd", invited=["hg-dong-van"], minutes_from_now=90, title="Họp kín")
    token = await link(node, shown["id"], name="Chủ tịch huyện", role="participant", endpoint_id="hg-dong-van")
    status, body = await node.call("GET", "/api/v1/me/meetings", token=token)
    assert status == 200, body
    assert {o["meeting_id"] for o in body["occurrences"]} == {shown["id"]}, body
    status, body = await node.call("GET", "/api/v1/me/meetings", token=await node.endpoint_token("hg-dong-van"))
    assert {o["meeting_id"] for o in body["occurrences"]} >= {shown["id"], other["id"]}, body
