"""Fuzz every REST route of the OpenAPI document the node serves (/api/openapi.json) with
schemathesis: for each operation, cases drawn from its schema (parameters, bodies, headers; both
schemathesis modes: values that fit the schema, and values that break it), sent
with one of several identities (operator, endpoint, viewer link, none, a forged token, or the
random bearer schemathesis made), and half of the time aimed at real ids so handlers get past
'not found'. Invariants: see tests/fuzz/support.py."""

from __future__ import annotations

import re

import pytest
import schemathesis
import yarl
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.openapi import from_dict

from mcu.api import VIDEO_CODECS
from tests.fuzz.strategies import digit_values, video_codecs_values
from tests.fuzz.support import SCALE, Checker, Failures, draw, record, serves_a_meeting

pytestmark = pytest.mark.timeout(120 * max(1, SCALE))  # SCALE: a longer run by hand
schemathesis.serializer.alias("application/sdp", "text/plain")  # WHIP/WHEP bodies are SDP text
schemathesis.serializer.alias("application/trickle-ice-sdpfrag", "text/plain")  # their PATCH bodies too
PER_OPERATION = 24
IDENTITIES = ("operator", "endpoint", "viewer", "none", "forged", "generated")


async def identities(node, meeting_id: str) -> dict[str, str | None]:
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{meeting_id}/links", json={"name": "Khách xem", "role": "viewer"}
    )
    assert status == 201, link
    head, body, mac = node.operator_token.split(".")
    return {
        "operator": node.operator_token,
        "endpoint": await node.endpoint_token("hg-meo-vac"),
        "viewer": link["token"],
        "none": None,
        "forged": ".".join([head, body[::-1], mac]),
    }


def _strategy(op, mode: GenerationMode) -> st.SearchStrategy:
    try:
        return op.as_strategy(generation_mode=mode)
    except Exception:  # noqa: BLE001 - an operation with nothing to break (no parameters) has no negative cases
        return st.nothing()


def request_args(case, node, known: dict[str, str], use_known: bool, token: str | None, who: str) -> dict:
    if use_known:
        for name in case.path_parameters or {}:
            if name in known:
                case.path_parameters[name] = known[name]
    kw = case.as_transport_kwargs(base_url=node.url)
    headers = {k: v for k, v in kw.get("headers", {}).items() if k.lower() not in ("x-schemathesis-testcaseid",)}
    if who != "generated":
        headers.pop("Authorization", None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    params = [
        (k, str(x).lower() if isinstance(x, bool) else str(x))
        for k, v in (kw.get("params") or {}).items()
        for x in (v if isinstance(v, list) else [v])
    ]
    args = {"method": kw["method"], "url": yarl.URL(kw["url"], encoded=True), "headers": headers, "params": params}
    if "json" in kw:
        args["json"] = kw["json"]
    elif "data" in kw:
        args["data"] = kw["data"]
    return args


async def test_every_route_with_and_without_auth(fuzz_node, checker: Checker):
    node = fuzz_node
    status, doc = await node.call("GET", "/api/openapi.json", token=None)
    assert status == 200
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    status, occ = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/occurrences")
    known = {
        "meeting_id": meeting["id"],
        "occurrence_id": occ["occurrences"][0]["occurrence_id"],
        "endpoint_id": "hg-mv-lung-pu",
        "username": "to-tinh",
        "name": "console.js",
        "what": "floor",
    }
    tokens = await identities(node, meeting["id"])
    operations = [result.ok() for result in from_dict(doc).get_all_operations()]
    assert len(operations) > 30, "the document lists every route"
    with Failures() as failures:
        for op in operations:
            extras = st.tuples(st.booleans(), st.sampled_from(IDENTITIES))
            cases = st.one_of(*(_strategy(op, mode) for mode in GenerationMode))  # valid and schema-breaking
            for case, (use_known, who) in draw(st.tuples(cases, extras), PER_OPERATION):
                args = request_args(case, node, known, use_known, tokens.get(who), who)
                what = (args["method"], str(args["url"]), who, args.get("json", args.get("data")), args["params"])
                record("rest", what)
                with failures.on(what):
                    before = checker.durable()
                    async with node.http.request(**args) as resp:
                        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
                    checker.http(what, resp.status, body, before)
    await serves_a_meeting(node)
    checker.log_clean("the final join")


async def test_video_codecs_on_create_and_change(fuzz_node, checker: Checker):
    """A meeting's video_codecs (#13) on POST and PATCH: refused in words and nothing stored, or
    stored upper case, each codec once, only codecs the server knows."""
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=60)
    body = {k: meeting[k] for k in ("title", "chair", "invited", "start", "duration_minutes")}
    statuses: list[int] = []
    with Failures() as failures:
        for value in draw(video_codecs_values(), 60):
            record("video_codecs", value)
            with failures.on(value):
                for method, path, data in (
                    ("POST", "/api/v1/meetings", {**body, "video_codecs": value}),
                    ("PATCH", f"/api/v1/meetings/{meeting['id']}", {"video_codecs": value}),
                ):
                    before = checker.durable()
                    status, answer = await node.call(method, path, json=data)
                    checker.http((method, value), status, answer, before)
                    statuses.append(status)
                    if status < 300 and answer["video_codecs"] is not None:
                        stored = answer["video_codecs"]
                        assert set(stored) <= set(VIDEO_CODECS) and len(set(stored)) == len(stored) >= 1, answer
    assert 400 in statuses and (200 in statuses or 201 in statuses), "the generator reaches both answers"


async def test_dial_number_and_pin_on_create_and_change(fuzz_node, checker: Checker):
    """A meeting's dial_number and pin (#14) on POST (both) and PATCH (pin; dial_number is fixed):
    refused in words and nothing stored, or stored as given: ASCII digits of the allowed lengths,
    and a dial number never given to two meetings."""
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=60)
    body = {k: meeting[k] for k in ("title", "chair", "invited", "start", "duration_minutes")}
    rules = {"dial_number": re.compile(r"[1-9][0-9]{3,8}"), "pin": re.compile(r"[0-9]{4,8}")}
    statuses: list[int] = []
    numbers: dict[str, str] = {meeting["dial_number"]: meeting["id"]}
    with Failures() as failures:
        for field, value in draw(st.tuples(st.sampled_from(sorted(rules)), digit_values()), 80):
            record(field, value)
            with failures.on((field, value)):
                for method, path, data in (
                    ("POST", "/api/v1/meetings", {**body, field: value}),
                    ("PATCH", f"/api/v1/meetings/{meeting['id']}", {field: value}),
                ):
                    before = checker.durable()
                    status, answer = await node.call(method, path, json=data)
                    checker.http((method, field, value), status, answer, before)
                    statuses.append(status)
                    if status >= 300:
                        continue
                    assert answer[field] is None or rules[field].fullmatch(answer[field]), answer
                    assert rules["dial_number"].fullmatch(answer["dial_number"]), answer
                    assert numbers.setdefault(answer["dial_number"], answer["id"]) == answer["id"], answer
                    if field == "dial_number":
                        # set only at creation; null there means "assign one" (checked above)
                        assert method == "POST" and (answer[field] == value or value is None), answer
    assert 400 in statuses and 201 in statuses, "the generator reaches both answers"
