"""The share bucket's CORS rules, read against what the code hands browsers: presigned
uploads (PUT) and large exports (a redirect to a presigned GET)."""
from __future__ import annotations

import re

from tests.conftest import call
from tests.deploy.conftest import ROOT


def test_bucket_cors_allows_exactly_the_presigned_upload_and_export(built, client, user_token):
    """The dashboard PUTs share files to presigned URLs with the headers the upload target
    names, and follows a large export's redirect to a presigned GET, reading its file name
    from Content-Disposition. Nothing else crosses origins to the bucket."""
    rules = {tuple(rule["AllowedMethods"]): rule
             for rule in built["template"]["Resources"]["ShareBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]}
    assert set(rules) == {("PUT",), ("GET",)}
    assert all(rule["AllowedOrigins"] == ["*"] for rule in rules.values())

    files = [{"path": "index.html", "size": 20, "content_type": "text/html"},
             {"path": "logo.svg", "size": 30, "content_type": "image/svg+xml"}]
    status, announced, _ = call(client, "POST", "/shares/uploads", {"name": "Cors", "files": files}, token=user_token)
    assert status == 201, announced
    sent = {name.lower() for target in announced["uploads"] for name in target["headers"]}
    browser_managed = {"content-length", "host"}
    assert sent - browser_managed == set(rules[("PUT",)]["AllowedHeaders"]) == {"content-type"}
    assert all(target["method"] == "PUT" for target in announced["uploads"])

    download = (ROOT / "chalicelib" / "web" / "dashboard" / "api.js").read_text()
    download = download[download.index("export async function download"):]
    read = set(re.findall(r"response\.headers\.get\('([^']+)'\)", download[:download.index("\n}\n")]))
    assert read == set(rules[("GET",)]["ExposedHeaders"]) == {"Content-Disposition"}
    assert "AllowedHeaders" not in rules[("GET",)], "a redirected GET carries only safelisted headers"
