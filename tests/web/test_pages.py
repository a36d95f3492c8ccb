"""The pages and their assets over plain HTTP (no browser needed)."""

from __future__ import annotations

import re

from signaling.web import STATIC


async def test_pages_and_assets_are_served_with_a_strict_policy(node):
    for path in ("/join?token=x", "/console"):
        async with node.http.get(node.url + path) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/html")
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp
            assert resp.headers["Referrer-Policy"] == "no-referrer"  # the join token must not leak
            html = await resp.text()
        # every asset a page names is served, and nothing is loaded from elsewhere
        for asset in re.findall(r'(?:src|href)="(/web/[^"]+)"', html):
            async with node.http.get(node.url + asset) as r:
                assert r.status == 200, asset
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    async with node.http.get(node.url + "/web/join.js") as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert "import" in await resp.text()


async def test_unknown_or_sneaky_asset_names_are_404(node):
    for name in ("nope.js", "..%2Fapp.py", "join.html", ".hidden.js", "__init__.py"):
        status, body = await node.call("GET", f"/web/{name}", token=None)
        assert status == 404, name
        assert body["error"]["code"] == "not_found"


def test_modules_import_only_local_files_and_stay_small():
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 400, path.name
        if path.suffix == ".js":
            for target in re.findall(r'from "([^"]+)"', text):
                assert target.startswith("./") and (STATIC / target[2:]).is_file(), (path.name, target)
        assert "http://" not in text and "https://" not in text, path.name
