"""The OpenAPI paths api_recordings offers to signaling.api.openapi describe exactly its routes."""

from __future__ import annotations

import copy

import msgspec
from aiohttp import web
from openapi_spec_validator import validate

from signaling.api import openapi, recordings as api_recordings


def test_paths_match_routes_and_validate():
    doc = copy.deepcopy(openapi.openapi_document("http://127.0.0.1:8080"))
    paths = api_recordings.openapi_paths(openapi._op, openapi._ok)
    doc["paths"].update(paths)
    _, schemas = msgspec.json.schema_components(
        [api_recordings.RecordingAction, api_recordings.StreamingAction], ref_template=openapi.REF + "{name}"
    )
    doc["components"]["schemas"].update(schemas)
    validate(doc)
    app = web.Application()
    app.add_routes(api_recordings.routes)
    served = {(r.resource.canonical, r.method) for r in app.router.routes() if r.method != "HEAD"}
    assert served == {(p, m.upper()) for p, ops in paths.items() for m in ops}
