"""A query parameter a route does not know is ignored, on every route, and one sent twice counts
once, with its last value (docs/api-notes.md, "Errors"): refusing them was weighed and left,
since the routes a browser or a mail opens cannot refuse them."""
from __future__ import annotations

from tests.conftest import call
from tests.factories import make_share
from tests.test_spikes import PAGE_SPIKE, post


def _ids(body) -> set:
    return {spike["id"] for spike in body["data"]}


def test_a_misspelt_parameter_is_ignored_and_a_listing_without_project_needs_a_credential(client, user_token):
    make_share("owner@example.com", "first")
    make_share("owner@example.com", "second")
    assert post(client, {**PAGE_SPIKE, "id": "on-first", "projectKey": "first"})[0] == 201
    assert post(client, {**PAGE_SPIKE, "id": "on-second", "projectKey": "second"})[0] == 201
    status, body, _ = call(client, "GET", "/spikes?projct=first")
    assert status == 401 and "?project=" in body["error"]
    status, body, _ = call(client, "GET", "/spikes?projct=first", token=user_token)
    assert status == 200 and _ids(body) == {"on-first", "on-second"}  # unfiltered: all the caller's
    status, body, _ = call(client, "GET", "/spikes?project=first&_=1733580000000", token=user_token)
    assert status == 200 and _ids(body) == {"on-first"}


def test_a_repeated_parameter_counts_with_its_last_value(client):
    make_share("owner@example.com", "rated")
    for spike_id, rating in (("loved", "love"), ("so-so", "meh")):
        assert post(client, {**PAGE_SPIKE, "id": spike_id, "projectKey": "rated", "rating": rating})[0] == 201
    status, body, _ = call(client, "GET", "/spikes?project=rated&rating=love&rating=meh")
    assert status == 200 and _ids(body) == {"so-so"}


def test_pages_assets_and_api_routes_answer_with_a_parameter_they_do_not_know(client, user_token):
    for path in ("/health?_=1", "/widget.js?v=3", "/openapi.json?utm_source=mail", "/dashboard?ref=mail"):
        assert client.http.get(path).status_code == 200, path
    assert call(client, "GET", "/shares?_=1", token=user_token)[0] == 200
