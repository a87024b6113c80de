"""Feedback items earlier reviews left open (docs/security.md, 126 on): each test failed before
its fix."""
from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, call
from tests.test_serving import site
from tests.test_shares import make_pro


# --- Feedback posted to a share whose deletion started is kept for its owner only -------------

def test_feedback_posted_to_a_protected_share_being_deleted_is_kept_for_its_owner_only(client, user_token):
    """The widget on a protected page still open posts after the owner deleted the share: the
    feedback was stored under the bare key, listed to anyone by the share's id or slug, with
    the password of the `?pw=` link the reviewer opened in its `url` and `page`."""
    from chalicelib.store import shares as share_store
    make_pro("owner@example.com")
    body = site(client, user_token, name="Locked", password="open sesame")
    slug, share = body["slug"], share_store.get_by_id(body["share_id"])
    address = f"http://127.0.0.1:8000/s/{slug}/?pw=open%20sesame"
    share_store.tombstone(share, share.owner_id)  # the deletion started, not finished
    posted = []
    for key in (body["share_id"], slug, "finished"):
        if key == "finished":
            share_store.remove(share)  # finished: its slug is retired, kept for its owner
            key = slug
        status, created, _ = call(client, "POST", "/spikes", {
            "type": "page", "projectKey": key, "url": address, "page": f"/s/{slug}/?pw=open%20sesame",
            "comments": "still open in a tab"})
        assert status == 201, created
        posted.append(created["id"])
        status, listed, _ = call(client, "GET", f"/spikes?project={key}")
        assert status == 200 and listed["data"] == [], listed  # not public
        status, stored, _ = call(client, "GET", f"/spikes/{created['id']}", token=user_token)
        assert status == 200, stored  # nothing lost: the owner's
        assert stored["url"] == f"http://127.0.0.1:8000/s/{slug}/" and stored["page"] == f"/s/{slug}/", stored
    status, own, _ = call(client, "GET", "/spikes", token=user_token)
    assert status == 200 and sorted(item["id"] for item in own["data"]) == sorted(posted)
    # By id once the deletion finished nothing names the owner: kept, for the admin alone.
    status, created, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": body["share_id"],
                                                          "url": address, "comments": "a day later"})
    assert status == 201, created
    status, listed, _ = call(client, "GET", f"/spikes?project={body['share_id']}")
    assert status == 200 and listed["data"] == [], listed
    status, everything, _ = call(client, "GET", f"/spikes?token={ADMIN_TOKEN}")
    kept = [item for item in everything["data"] if item["id"] == created["id"]]
    assert status == 200 and kept[0]["url"] == f"http://127.0.0.1:8000/s/{slug}/", everything


def test_a_password_in_feedback_under_a_bare_key_is_not_stored(client):
    """A `?pw=` link's address was kept as sent when the key named no share (any more)."""
    status, created, _ = call(client, "POST", "/spikes", {
        "type": "page", "projectKey": "plain-site", "url": "https://example.com/a?x=1&pw=secret#top"})
    assert status == 201, created
    status, listed, _ = call(client, "GET", "/spikes?project=plain-site")
    assert status == 200 and listed["data"][0]["url"] == "https://example.com/a?x=1#top", listed
