"""GET /openapi.json describes every route; GET /docs renders it from our own assets."""
from __future__ import annotations

import json
import re

from chalicelib.api import fallback, openapi
from tests.conftest import call


def _real_views(routes):
    for path, views in routes.items():
        for method, entry in views.items():
            # Catch-alls (404) and the 405 views are not routes of the API.
            if not fallback.is_fallback(entry):
                yield method, path


def test_every_route_is_described():
    from app import app
    undescribed = [(m, p) for m, p in _real_views(app.routes) if openapi.described(m, p) is None]
    assert undescribed == [], "add these to chalicelib/api/openapi.py OPERATIONS"


def test_the_document_lists_every_route_and_method(client):
    from app import app
    status, doc, headers = call(client, "GET", "/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert doc["openapi"] == "3.1.0"
    for method, path in _real_views(app.routes):
        assert method.lower() in doc["paths"][path], (method, path)
    status, versioned, _ = call(client, "GET", "/v1/openapi.json")
    assert status == 200 and versioned["paths"].keys() == doc["paths"].keys()


def test_the_document_is_valid_openapi_3_1(client):
    from openapi_spec_validator import validate
    _, doc, _ = call(client, "GET", "/v1/openapi.json")
    validate(doc)  # against the OpenAPI 3.1 schema, its JSON Schema dialect included


def test_request_bodies_come_from_the_validating_models(client):
    _, doc, _ = call(client, "GET", "/openapi.json")
    post_spikes = doc["paths"]["/v1/spikes"]["post"]
    body = post_spikes["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SpikeIn"}
    spike_in = doc["components"]["schemas"]["SpikeIn"]
    assert spike_in["properties"]["rating"]["anyOf"][0]["enum"] == ["love", "like", "meh", "no"]
    assert spike_in["properties"]["comments"]["anyOf"][0]["maxLength"] == 10_000
    assert post_spikes["security"][0] == {}  # anonymous (the widget), or as a user
    assert set(post_spikes["responses"]["201"]["headers"]) >= {"X-RateLimit-Limit", "X-RateLimit-Remaining",
                                                               "X-RateLimit-Reset"}
    assert post_spikes["responses"]["429"] == {"$ref": "#/components/responses/Error429"}


def test_authentication_schemes_and_error_envelope(client):
    _, doc, _ = call(client, "GET", "/openapi.json")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "in": "header", "name": "X-API-Key"}
    assert schemes["adminToken"]["in"] == "query" and schemes["adminToken"]["name"] == "token"
    assert {"bearerAuth": []} in doc["paths"]["/me"]["get"]["security"]
    assert {"adminToken": []} in doc["paths"]["/spikes"]["get"]["security"]
    error = doc["components"]["schemas"]["ErrorOut"]
    assert {"error", "code", "request_id"} <= set(error["required"])
    assert "| `RATE_LIMIT` | 429 |" in doc["info"]["description"]
    assert doc["servers"] == [{"url": "http://localhost"}] or doc["servers"][0]["url"].startswith("http")


def test_docs_page_is_served_from_our_own_assets(client):
    for page in ("/docs", "/v1/docs"):
        response = client.http.get(page)
        assert response.status_code == 200
        html = response.body.decode()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert not re.search(r"(src|href)=\"(https?:)?//", html), "no CDN at run time"
        for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
            base = page.rsplit("/", 1)[0]
            served = client.http.get(f"{base}/{asset}")
            assert served.status_code == 200 and len(served.body) > 100, asset
    bundle = client.http.get("/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.body
    assert b"Apache License" in client.http.get("/docs/LICENSE").body
    status, data, _ = call(client, "GET", "/docs/nothing.js")
    assert status == 404 and data["code"] == "NOT_FOUND"
