"""GET /openapi.json describes every route; GET /docs renders it from our own assets."""
from __future__ import annotations

import json
import re

import pytest

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
        if openapi.listed(method, path):
            assert method.lower() in doc["paths"][path], (method, path)
        else:  # a page's HEAD: stated once in the description, its GET listed
            assert method == "HEAD" and "get" in doc["paths"][path] and "`HEAD`" in doc["info"]["description"]
    status, versioned, _ = call(client, "GET", "/v1/openapi.json")
    assert status == 200 and versioned["paths"].keys() == doc["paths"].keys()


def test_the_document_describes_only_routes_the_app_serves():
    """Methods both ways: an entry of OPERATIONS whose route or method is gone (or is only a
    405 fallback) would describe an operation that answers 404 or 405."""
    from app import app
    from chalicelib.api import openapi
    doc = openapi.build("http://localhost", app.routes)
    served = {(method, path) for method, path in _real_views(app.routes) if openapi.listed(method, path)}
    documented = {(method.upper(), path) for path, operations in doc["paths"].items() for method in operations}
    assert documented == served
    assert [key for key in openapi.OPERATIONS if key not in served] == []


def test_an_answer_the_document_does_not_list_fails_the_test_that_got_it(client):
    """tests/documented_answers.py checks every answer of the suite against the document."""
    from tests import documented_answers
    assert documented_answers.undocumented("GET", "/me", 200) is None
    assert "does not list" in documented_answers.undocumented("GET", "/v1/me", 418)
    assert "does not list" in documented_answers.undocumented("POST", "/shares", 200)  # it answers 201
    assert "no such operation" in documented_answers.undocumented("DELETE", "/me", 200)
    assert documented_answers.undocumented("DELETE", "/me", 405) is None
    assert documented_answers.undocumented("GET", "/no/such/route", 404) is None
    # A route whose document lost its 200: the request that gets one fails.
    documented_answers.document()["paths"]["/health"]["get"]["responses"].pop("200")
    try:
        with pytest.raises(AssertionError, match="GET /health answered 200"):
            client.http.get("/health")
    finally:
        documented_answers.forget()


def test_every_status_of_the_contract_is_documented_on_every_operation(client):
    """The contract's status table (400, 401, 403, 404, 429, 500): 500 (INTERNAL_ERROR) and a
    dependency's 503 can come from any route; the credentials' 401/403 from any non-public one."""
    _, doc, _ = call(client, "GET", "/openapi.json")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert {"500", "503"} <= set(operation["responses"]), (method, path)
            if operation["security"] and {} not in operation["security"]:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert doc["components"]["responses"]["Error500"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/ErrorOut"}


def test_the_admin_token_and_token_parameter_of_the_spike_routes_are_documented(client):
    """The /spikes routes take any credential in ?token= (the CLI's push posts with it) and
    GET/PATCH/DELETE /spikes/{id} serve the admin: the document said neither."""
    _, doc, _ = call(client, "GET", "/openapi.json")
    for method in ("get", "patch", "delete"):
        operation = doc["paths"]["/spikes/{spike_id}"][method]
        assert {"adminToken": []} in operation["security"] and {} not in operation["security"]
        assert "token" in {parameter.get("name") for parameter in operation["parameters"]}
    post = doc["paths"]["/spikes"]["post"]
    assert {} in post["security"] and {"adminToken": []} in post["security"]
    assert "token" in {parameter.get("name") for parameter in post["parameters"]}


def test_a_locked_share_page_answers_a_documented_403(client):
    _, doc, _ = call(client, "GET", "/openapi.json")
    for method in ("get", "head", "post"):
        assert "403" in doc["paths"]["/s/{slug}/{p1}"][method]["responses"], method


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


def test_the_error_codes_table_lists_only_what_is_answered(client):
    """UsageLimit, the base of SPIKE_LIMIT and SHARE_LIMIT, inherited BAD_REQUEST and was never
    raised itself: a `BAD_REQUEST | 429` row named an answer no route gives."""
    _, doc, _ = call(client, "GET", "/openapi.json")
    rows = set(re.findall(r"^\| `([A-Z_]+)` \| (\d+) \|$", doc["info"]["description"], re.M))
    assert {("SPIKE_LIMIT", "429"), ("SHARE_LIMIT", "429"), ("BAD_REQUEST", "400")} <= rows
    assert ("BAD_REQUEST", "429") not in rows


def test_no_error_class_answers_a_code_it_only_inherits_with_a_status_of_its_own():
    """The table lists every error class's (code, status) (one map: api/routing.py): a class that
    changes the status but not the code, and is a base of others, names a pair that may never be
    answered (UsageLimit's BAD_REQUEST with 429). A leaf that does (WebhooksNotConfigured) is raised."""
    from chalicelib import errors
    stack, bases = [errors.SpikesError], []
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__subclasses__() and "code" not in vars(cls) and "status" in vars(cls):
            bases.append(cls.__name__)
    assert bases == []


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


def test_the_document_stays_within_what_the_docs_page_renders():
    """Swagger UI (5.35, /docs) stopped rendering after a handful of operations once the document
    held about 145 (tests/e2e/test_browser_docs.py caught it when each page's HEAD was listed).
    This keeps the quick loop warned before the browser test: list fewer, or split the document."""
    from app import app
    doc = openapi.build("http://localhost", app.routes)
    assert sum(len(operations) for operations in doc["paths"].values()) <= 140


# What a schema object of an OpenAPI 3.1 document may hold: JSON Schema 2020-12's keywords and
# OpenAPI's own. Anything else is ignored by validators and client generators, so a bound
# written under another name (pydantic's `ge`/`le` when a Field follows a validator in
# Annotated) is a limit the server enforces and the document silently does not state.
SCHEMA_KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$comment", "$vocabulary",
    "type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    "properties", "patternProperties", "additionalProperties", "propertyNames", "unevaluatedProperties",
    "required", "dependentRequired", "dependentSchemas", "minProperties", "maxProperties",
    "items", "prefixItems", "contains", "minContains", "maxContains", "unevaluatedItems",
    "minItems", "maxItems", "uniqueItems",
    "minLength", "maxLength", "pattern", "format", "contentEncoding", "contentMediaType", "contentSchema",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
    "discriminator", "xml", "externalDocs", "example",
})
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_VALUES = ("items", "not", "if", "then", "else", "contains", "additionalProperties", "propertyNames",
                 "unevaluatedProperties", "unevaluatedItems", "contentSchema")


def _unknown_keywords(schema, where):
    if not isinstance(schema, dict):
        return []
    found = [f"{where}: {key}" for key in schema if key not in SCHEMA_KEYWORDS]
    for key in SCHEMA_MAPS:
        for name, sub in schema.get(key, {}).items():
            found += _unknown_keywords(sub, f"{where}.{key}.{name}")
    for key in SCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key, [])):
            found += _unknown_keywords(sub, f"{where}.{key}[{index}]")
    for key in SCHEMA_VALUES:
        found += _unknown_keywords(schema.get(key), f"{where}.{key}")
    return found


def test_every_schema_states_its_limits_in_json_schema_keywords():
    """monthly_cap_cents (0 to 100,000,000 cents: POST /auth/api-key, PATCH /me, PATCH
    /auth/api-key/{id}) was documented as `ge`/`le`, so /docs and generated clients showed no
    bound and a cap above it was a surprise 400."""
    from app import app
    doc = openapi.build("http://localhost", app.routes)
    found = []
    for name, schema in doc["components"]["schemas"].items():
        found += _unknown_keywords(schema, name)
    assert found == []
    cap = doc["components"]["schemas"]["KeyCreateIn"]["properties"]["monthly_cap_cents"]["anyOf"][0]
    assert (cap["minimum"], cap["maximum"]) == (0, 100_000_000)


def test_docs_api_notes_lists_the_rate_limited_routes_the_document_marks():
    """docs/api-notes.md promised the X-RateLimit-* headers on a list of routes that had fallen
    behind: a share's completion and the webhook test answered them too, unlisted."""
    from pathlib import Path
    notes = (Path(__file__).resolve().parents[1] / "docs" / "api-notes.md").read_text(encoding="utf-8")
    paragraph = notes.split("- Every rate-limited route (", 1)[1].split(" answers with ", 1)[0]
    listed = set(re.findall(r"`(GET|POST|PATCH|DELETE) (/[^`?]*)`", paragraph))
    marked = {key for key, op in openapi.OPERATIONS.items() if op.rate_limited}
    assert listed == marked


# What the CLI requires of each answer (CLIENTS.md), as the type it parses: a null fails it.
CLI_REQUIRED = {
    "ApiKeyOut": {"key_id": "string", "key_prefix": "string", "scopes": "string", "created_at": "string"},
    "ApiKeyCreatedOut": {"ok": "boolean", "api_key": "string", "key_id": "string", "scopes": "string",
                         "created_at": "string"},
    "KeyMeOut": {"key_id": "string", "scopes": "string"},
    "ShareCreatedOut": {"url": "string", "slug": "string"},
    "ShareListItemOut": {"id": "string", "slug": "string", "url": "string", "spike_count": "integer",
                         "created_at": "string"},
    "ShareOut": {"id": "string", "slug": "string", "exported_spikes": "array"},
    "UsageOut": {"spikes": "integer", "shares": "integer", "tier": "string"},
}


def test_the_fields_the_cli_parses_are_documented_as_it_parses_them():
    """The CLI's list-keys and create-key parse key_prefix and created_at as strings, its share
    and shares the slug and created_at (CLIENTS.md): the document typed them string-or-null, so
    a client generated from it handled a null the server never sends, and the tests' response
    check would have let one through."""
    from app import app
    schemas = openapi.build("http://localhost", app.routes)["components"]["schemas"]
    wrong = [(model, name, schemas[model]["properties"][name]) for model, fields in CLI_REQUIRED.items()
             for name, kind in fields.items()
             if schemas[model]["properties"][name].get("type") != kind or name not in schemas[model]["required"]]
    assert wrong == []


def test_the_session_only_operations_are_documented_without_api_keys():
    """PATCH /me, billing, claiming, rotating and logging out answer an API key 403 SCOPE_DENIED
    (docs/agents.md), but the document offered the X-API-Key scheme for them, so a reader of
    /docs who authorised with a key was refused. They list only the bearer session now."""
    from tests.test_apikeys import ROUTES, SESSION_ONLY
    from app import app
    doc = openapi.build("http://localhost", app.routes)
    session_only = {(method, path.split("?")[0]) for method, path, scope in ROUTES if scope == SESSION_ONLY}
    documented = {(method.upper(), path) for path, operations in doc["paths"].items()
                  for method, operation in operations.items()
                  if operation["security"] == [{"bearerAuth": []}] and not path.startswith("/v1/")}
    assert documented == session_only
    assert "403 SCOPE_DENIED" in doc["paths"]["/me"]["patch"]["description"]


def test_every_field_a_request_sends_is_described():
    """/openapi.json is all an agent holding only the server's address can read: `approve` of
    POST /auth/verify, the `scopes` a key may be given, `everywhere` of a logout were explained only
    in comments of the code and in docs/. Every field of every request body (the
    multipart share's metadata included) says what it does."""
    from app import app
    doc = openapi.build("http://localhost", app.routes)
    schemas = doc["components"]["schemas"]
    bodies = {"ShareMetadata"}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media["schema"].get("$ref")
                if ref:
                    bodies.add(ref.rsplit("/", 1)[-1])
    assert {"SpikeIn", "KeyCreateIn", "VerifyRequest", "LogoutRequest", "UploadRequest"} <= bodies
    undescribed = [f"{name}.{field}" for name in sorted(bodies)
                   for field, schema in schemas[name]["properties"].items() if not schema.get("description")]
    assert undescribed == []
