"""A transaction that creates something, whose commit answer was lost (DynamoDB committed and
answered 500, and the write was sent again), is answered as the commit it repeats: once, and
with what it made (docs/security.md, 70). On DynamoDB Local only: moto ignores the client
request token these transactions send (tests/lost_answers.py)."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.services import quotas
from chalicelib.store.models import User
from tests.conftest import call, login_token_from_mail, sign_in
from tests.lost_answers import commit_answer_lost, skip_on_moto
from tests.test_agent_review_4 import FILES, upload_files
from tests.test_agent_tier import configured  # noqa: F401 - fixture
from tests.test_shares import INDEX, start_presigned, upload
from tests.test_upload_counts import (DECEMBER, JANUARY, NEW_YEAR, SHARE_COST, account_cost, complete, moment,  # noqa: F401
                                      signed_in)


def _clock_moves_on():
    """The retry is sent seconds later: what a transaction writes must not depend on when."""
    later = clock.now() + timedelta(seconds=5)
    clock.use(lambda: later)


def test_a_sign_in_link_opened_once_signs_in(backend_client, store_backend):
    """Sent again, the link's own condition (not used yet) refused it: 401 'used' for a link
    just used, and the session it made for nobody."""
    skip_on_moto(store_backend)
    client = backend_client
    call(client, "POST", "/auth/login", {"email": "lost-link@example.com"})
    login_token = login_token_from_mail("lost-link@example.com")
    try:
        with commit_answer_lost("auth", _clock_moves_on) as lost:
            status, body, _ = call(client, "POST", "/auth/verify", {"login_token": login_token})
    finally:
        clock.use(None)
    assert lost and status == 200, body
    assert call(client, "GET", "/me", token=body["token"])[1]["email"] == "lost-link@example.com"
    assert call(client, "POST", "/auth/verify", {"login_token": login_token})[1]["code"] == "TOKEN_USED"


def test_an_approved_sign_in_is_collected_once(backend_client, store_backend):
    """Sent again, the collection's own condition refused it: 'already collected' to the one
    program that collected it, which never got its session."""
    skip_on_moto(store_backend)
    client = backend_client
    _, asked, _ = call(client, "POST", "/auth/login", {"email": "lost-poll@example.com"})
    call(client, "POST", "/auth/verify", {"login_token": login_token_from_mail("lost-poll@example.com"),
                                          "approve": True})
    with commit_answer_lost("auth") as lost:
        status, body, _ = call(client, "GET", f"/auth/poll?poll_token={asked['poll_token']}")
    assert lost and status == 200 and body["token"], body
    assert call(client, "GET", "/me", token=body["token"])[0] == 200
    assert call(client, "GET", f"/auth/poll?poll_token={asked['poll_token']}")[1]["code"] == "TOKEN_USED"


def test_a_rotated_token_is_answered_with_its_successor(backend_client, store_backend):
    """Sent again, the old session was gone: 401, and the caller signed out, holding neither."""
    skip_on_moto(store_backend)
    client = backend_client
    old = sign_in(client, "lost-rotate@example.com")
    with commit_answer_lost("auth") as lost:
        status, body, _ = call(client, "POST", "/auth/rotate-token", token=old)
    assert lost and status == 200, body
    assert call(client, "GET", "/me", token=body["token"])[0] == 200
    assert call(client, "GET", "/me", token=old)[0] == 401


def test_an_agent_signup_is_made_once_and_answered(backend_client, store_backend):
    """Sent again, the new account's own condition refused it: 500, an account and a key made
    that nobody was shown."""
    skip_on_moto(store_backend)
    client = backend_client
    with commit_answer_lost("users") as lost:
        status, created, _ = call(client, "POST", "/auth/api-key", {"name": "lost-signup"})
    assert lost and status == 201, created
    assert call(client, "GET", "/me", token=created["api_key"])[1]["id"] == created["account_id"]


def test_a_share_is_made_once_and_keeps_its_files(backend_client, store_backend):
    """Sent again, the share's own condition refused it: 409 'retry the upload', the share
    stored and counted, and its files removed. Made with a key, whose use the transaction
    counts with an expiry read from the clock: read once, so the retry writes the same."""
    skip_on_moto(store_backend)
    client = backend_client
    key = call(client, "POST", "/auth/api-key", {"name": "lost-share"})[1]["api_key"]
    try:
        with commit_answer_lost("shares", _clock_moves_on) as lost:
            status, share, _ = upload(client, key, [("index.html", INDEX)], {"name": "Once"})
    finally:
        clock.use(None)
    assert lost and status == 201, share
    assert [item["id"] for item in call(client, "GET", "/shares", token=key)[1]] == [share["share_id"]]
    owner = call(client, "GET", "/me", token=key)[1]["id"]
    assert User.get(owner).active_shares == 1
    assert call(client, "GET", f"/s/{share['slug']}/index.html")[0] == 200


def test_a_spike_retried_seconds_later_is_stored_once(backend_client, store_backend):
    """The post's transaction sends one token for all its attempts, but counted the spike with
    an expiry read from the clock on each: a retry a second later wrote something else under the
    same token, which DynamoDB refuses (IdempotentParameterMismatch: 500, the spike stored)."""
    skip_on_moto(store_backend)
    client = backend_client
    owner = sign_in(client, "lost-spike@example.com")
    _, share, _ = upload(client, owner, [("index.html", INDEX)], {"name": "Spiked"})
    try:
        with commit_answer_lost("spikes", _clock_moves_on) as lost:
            status, body, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"],
                                                              "comments": "once"})
    finally:
        clock.use(None)
    assert lost and status == 201, body
    listed = call(client, "GET", f"/spikes?project={share['slug']}", token=owner)[1]
    assert [spike["comments"] for spike in listed["data"]] == ["once"]


def test_a_held_charge_moved_once_is_not_refused_by_its_own_cap(backend_client, configured, moment):
    """A December upload completed in January moves its held charge into January's cap before
    copying anything. Sent again after its commit answer was lost, the move met January's cap
    with its own charge in it: 429 with room to spare, the upload left pending. On moto too
    (no token there: the charge is read back where the move put it)."""
    client = backend_client
    token, uid = signed_in(client, quotas.AGENT)
    assert call(client, "PATCH", "/me", {"monthly_cap_cents": 1}, token=token)[0] == 200
    started = start_presigned(client, token, FILES)[1]
    upload_files(started)
    moment["at"] = NEW_YEAR
    with commit_answer_lost("outbox") as lost:
        status, done, _ = complete(client, token, started["share_id"])
    assert lost and (status, done["status"]) == (200, "active"), done
    assert (account_cost(uid, DECEMBER), account_cost(uid, JANUARY)) == (0, SHARE_COST)
