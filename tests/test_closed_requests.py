"""Requests whose misspelt field would be ignored into a weaker result are refused instead
(docs/security.md, 164): a share meant to be protected, a sign-out meant to be everywhere."""
from __future__ import annotations

from tests.conftest import call, sign_in
from tests.test_shares import INDEX, make_pro, upload


def test_a_share_asked_for_with_a_misspelt_password_is_refused_not_made_public(client):
    token = sign_in(client, "owner@example.com")
    make_pro("owner@example.com")
    status, refused, _ = upload(client, token, [("index.html", INDEX)], {"name": "Secret", "pasword": "hunter2"})
    assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), refused
    assert [detail["field"] for detail in refused["details"]] == ["pasword"], refused
    assert "password" in refused["details"][0]["message"], refused  # says what it does take
    # The announced upload (the dashboard's and `python -m tools.share`'s way) alike.
    status, refused, _ = call(client, "POST", "/shares/uploads", token=token,
                              body={"name": "Secret", "Password": "hunter2",
                                    "files": [{"path": "index.html", "size": len(INDEX)}]})
    assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), refused
    status, listed, _ = call(client, "GET", "/shares", token=token)
    assert (status, listed) == (200, [])
    # What the CLI, the MCP server, the contract's examples and the dashboard send is taken.
    status, made, _ = upload(client, token, [("index.html", INDEX)], {"name": "site", "password": "hunter2"})
    assert status == 201, made
    status, made, _ = upload(client, token, [("index.html", INDEX)], {"slug": "my-project", "title": "My Project"})
    assert status == 201, made
    status, planned, _ = call(client, "POST", "/shares/uploads", token=token,
                              body={"name": "dropped", "files": [{"path": "index.html", "size": len(INDEX)}]})
    assert status == 201, planned


def test_a_misspelt_sign_out_everywhere_is_refused_not_answered_for_one_session(client):
    sessions = [sign_in(client, "leaver@example.com") for _ in range(2)]
    status, refused, _ = call(client, "POST", "/auth/logout", {"everwhere": True}, token=sessions[0])
    assert (status, refused["code"]) == (400, "VALIDATION_ERROR"), refused
    assert [call(client, "GET", "/me", token=token)[0] for token in sessions] == [200, 200]
    status, done, _ = call(client, "POST", "/auth/logout", {"everywhere": True}, token=sessions[0])
    assert (status, done["everywhere"]) == (200, True)
    assert [call(client, "GET", "/me", token=token)[0] for token in sessions] == [401, 401]
