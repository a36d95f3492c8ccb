"""The OpenAPI document describes exactly the routes the server has, and is a valid 3.1 document."""

from __future__ import annotations

from openapi_spec_validator import validate
import pytest

pytestmark = pytest.mark.integration


async def test_openapi_matches_routes(node):
    status, doc = await node.call("GET", "/api/openapi.json", token=None)
    assert status == 200
    validate(doc)
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in node.runner.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        served.add((route.resource.canonical, route.method))
    assert served == documented
    schema = doc["components"]["schemas"]["MeetingSpec"]
    assert "chair" in schema["properties"] and "invited" in schema["properties"]
