"""Items an earlier version wrote, in the shape it wrote them (raw writes, as read back from data
folders that version's `make dev` saved), served by this one: a stage or a `.local-data/`
upgraded in place keeps every account, spike, session and held event working (docs/deploy.md
"Upgrading")."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import clock, deps
from chalicelib.crypto import token_hash
from chalicelib.store import deliveries, open_spikes, spike_ids
from chalicelib.store.models import AuthItem, Delivery, LedgerItem, Share, Spike, User
from chalicelib.store.setup import create_tables, upgrade_items
from chalicelib.store.tables import table_name
from tests.conftest import call, sign_in
from tests.factories import make_share

USER_ID = "82f5a5ab-d444-551d-a15f-8d0bf4ff12d8"  # uuid5 of alice@example.com
IDLE_DAYS = 90


def _session_before_idle_expiry(token: str, created_at: float) -> None:
    """A bearer session as versions before idle expiry (e9bc215) stored it: no ``expires_at``,
    no ``session_epoch``."""
    AuthItem(f"bearer#{token_hash(token)}", kind="bearer", label="magic-link", created_at=int(created_at),
             user_id=USER_ID).save()


def _account() -> None:
    """The user item as the first versions wrote it (none of the attributes added since)."""
    User(USER_ID, email="alice@example.com", tier="free", created_at="2026-11-24T10:00:00Z", active_shares=0).save()


def test_a_session_minted_before_idle_expiry_expires_when_idle_too(client, env):
    """Such a session was accepted for good while unused: only a use gave it an expiry, so a
    token left in an old laptop's CLI config worked years later (security finding 187). Its
    last use unknown, it is idle since its creation at the latest; used in time, it gets an
    expiry like any other session and lives on while used."""
    env(SESSION_IDLE_DAYS=str(IDLE_DAYS), SESSION_MAX_DAYS="365")  # the lifetime (240): tests/test_sign_in_hardening.py
    _account()
    now = clock.epoch()
    _session_before_idle_expiry("old-unused-session", now - (IDLE_DAYS + 1) * 86400)
    _session_before_idle_expiry("old-session-in-use", now - 10 * 86400)

    status, body, _ = call(client, "GET", "/me", token="old-unused-session")
    assert (status, body["code"]) == (401, "AUTH_FAILED")

    status, body, _ = call(client, "GET", "/me", token="old-session-in-use")
    assert (status, body["email"]) == (200, "alice@example.com")
    stored = AuthItem.get(f"bearer#{token_hash('old-session-in-use')}")
    assert stored.expires_at >= now + (IDLE_DAYS - 1) * 86400
    base = clock.now()
    try:
        clock.use(lambda: base + timedelta(days=IDLE_DAYS - 5))  # past creation + idle, used since
        assert call(client, "GET", "/me", token="old-session-in-use")[0] == 200
    finally:
        clock.use(None)


def test_spikes_and_held_events_an_earlier_version_writes_after_the_upgrade_step_are_still_upgraded(
        client, monkeypatch):
    """The upgrade's steps were marked done once and never run again: a spike that a version
    from before ``owner_project`` wrote after that (its last invocations while the deploy ended,
    or that version deployed, or a branch's `make dev` started, on the same tables, then this
    one again) was listed but 404 to every GET, PATCH and DELETE by id for good, and an event it
    held was never released. The next deploy or local start finds them: the spikes received since
    the last look (no Scan of the spikes table again), and a Scan of the held events."""
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "site")
    assert spike_ids.backfilled() and deliveries.upgrade_held(clock.epoch(), 3600) == 0  # marked done
    status, _, _ = call(client, "POST", "/spikes", {"id": "written-by-the-older-version", "type": "page",
                                                     "projectKey": share.share_id})
    assert status == 201
    [spike] = Spike.id_index.query("written-by-the-older-version")
    spike.update(actions=[Spike.owner_project.remove()])  # as that version stored it
    Delivery("dlv_held_by_older", share_id=share.share_id, event_id="evt_1", event_type="spike.created",
             body="{}", url="https://hooks.example/x", secret_nonce="n", status=deliveries.PAUSED,
             created_at="2026-12-03T10:00:00.000Z", retry_from=int(clock.epoch())).save()  # no due, no TTL
    assert call(client, "GET", "/spikes/written-by-the-older-version", token=token)[0] == 404

    def no_scan(*args, **kwargs):
        raise AssertionError("the spikes table scanned again: a look reads the spikes received since the last")
    monkeypatch.setattr(Spike, "scan", no_scan)
    create_tables(deps.settings(), deps.dynamodb_client())  # this version's next start (or deploy)

    status, body, _ = call(client, "PATCH", "/spikes/written-by-the-older-version", {"resolved": True}, token=token)
    assert (status, body["resolved"]) == (200, True)
    held = Delivery.get("dlv_held_by_older")
    assert held.due == deliveries.HELD_PREFIX + share.share_id and held.expires_at is not None


def test_a_deployers_clock_hours_ahead_does_not_hide_what_an_earlier_version_writes_next(client, monkeypatch):
    """The look at stored spikes (finding 188) recorded the deploying machine's clock as how far
    it had looked, and the next one read from an hour before that: with that laptop's clock three
    hours ahead, a spike an earlier version's function stored in the two hours after the deploy
    was never looked at, 404 by id for good. The record is the newest stored spike's time when
    that is earlier (security finding 196)."""
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "site")
    assert call(client, "POST", "/spikes", {"id": "before", "type": "page", "projectKey": share.share_id})[0] == 201
    real_epoch = clock.epoch
    monkeypatch.setattr(clock, "epoch", lambda: real_epoch() + 3 * 3600)  # the deployer's laptop
    create_tables(deps.settings(), deps.dynamodb_client())
    monkeypatch.setattr(clock, "epoch", real_epoch)

    # An earlier version's function (its clock right) stores a spike without owner_project.
    assert call(client, "POST", "/spikes", {"id": "by-the-older-version", "type": "page",
                                            "projectKey": share.share_id})[0] == 201
    [spike] = Spike.id_index.query("by-the-older-version")
    spike.update(actions=[Spike.owner_project.remove()])
    monkeypatch.setattr(clock, "epoch", lambda: real_epoch() + 3 * 3600)
    create_tables(deps.settings(), deps.dynamodb_client())  # the next deploy, from the same laptop

    assert call(client, "GET", "/spikes/by-the-older-version", token=token)[0] == 200


def test_saved_data_whose_markers_an_earlier_start_dated_after_its_spikes_is_looked_at_whole_once(
        client, monkeypatch):
    """The local server's versions of 2026-12-06 and 07 before 051eee6 ran the upgrade steps on the
    emulator's empty tables, before the saved items were put back, and saved their markers done,
    dated after every restored spike: each later start looked only at spikes received since, so
    an older version's spikes never got ``owner_project`` or ``open_sort_key`` (404 by id, out of
    the owner's open feedback) even once the order was right. Saved data is looked at whole once."""
    token = sign_in(client, "owner@example.com")
    share = make_share("owner@example.com", "site")
    base = clock.now()
    try:
        clock.use(lambda: base - timedelta(hours=3))  # saved by the older version, hours before
        posted = call(client, "POST", "/spikes", {"id": "restored", "type": "page", "projectKey": share.share_id})
        assert posted[0] == 201
    finally:
        clock.use(None)
    [spike] = Spike.id_index.query("restored")
    spike.update(actions=[Spike.owner_project.remove(), open_spikes.closed()])  # as that version stored it
    for marker in (spike_ids.BACKFILL_MARKER, open_spikes.BACKFILL_MARKER):  # as the earlier start saved them
        LedgerItem(marker, state=spike_ids.DONE, detail={"checked_to": clock.epoch()}).save()
    assert call(client, "POST", "/spikes", {"id": "since", "type": "page", "projectKey": share.share_id})[0] == 201
    upgrade_items(deps.settings())  # a look since the markers (a deploy's) does not find it
    assert call(client, "GET", "/spikes/restored", token=token)[0] == 404

    upgrade_items(deps.settings(), saved_data=True)  # the local server's start on its saved data
    assert call(client, "GET", "/spikes/restored", token=token)[0] == 200
    listed = call(client, "GET", "/spikes?resolved=false", token=token)[1]["data"]
    assert [item["id"] for item in listed] == ["since", "restored"]

    def no_scan(*args, **kwargs):
        raise AssertionError("saved data looked at whole again: once is enough")
    monkeypatch.setattr(Spike, "scan", no_scan)
    upgrade_items(deps.settings(), saved_data=True)  # the next start


# What the first version that kept `make dev` data (2026-11-24) stored for one account: a share with
# its slug claim (no owner or post hints), counters before they were sharded, and a widget's spike
# before ids were kept (its client's id in ``client_id``, JSON attributes as strings).
SHARE_ID = "sh_udx8woqvbavw"
FIRST_VERSION_ITEMS = {
    "shares": [
        {"pk": {"S": f"share#{SHARE_ID}"}, "share_id": {"S": SHARE_ID}, "slug": {"S": "alice-site"},
         "owner_id": {"S": USER_ID}, "name": {"S": "alice-site"}, "created_at": {"S": "2026-11-24T10:00:00Z"},
         "status": {"S": "active"}, "password_version": {"N": "0"}, "file_count": {"N": "1"},
         "total_bytes": {"N": "13"}, "files": {"S": '{"index.html": {"size": 13, "type": "text/html"}}'}},
        {"pk": {"S": "slug#alice-site"}, "share_id": {"S": SHARE_ID}, "file_count": {"N": "0"},
         "password_version": {"N": "0"}, "total_bytes": {"N": "0"}}],
    "ledger": [
        {"pk": {"S": f"quota#{SHARE_ID}#2026-11"}, "count": {"N": "1"}},
        {"pk": {"S": f"spikes#{SHARE_ID}"}, "count": {"N": "1"}},
        {"pk": {"S": f"usage#{USER_ID}#2026-11"}, "count": {"N": "1"}}],
    "spikes": [
        {"spike_id": {"S": "spk_cbkxsp5zlmh5c4nptp5ce"}, "client_id": {"S": "alicewidget0000000000"},
         "project": {"S": SHARE_ID}, "project_key": {"S": SHARE_ID}, "share_id": {"S": SHARE_ID},
         "owner_id": {"S": USER_ID}, "feed": {"S": "all"}, "type": {"S": "page"}, "page": {"S": "Hi"},
         "url": {"S": "https://example.com/"}, "comments": {"S": "widget 0"}, "rating": {"S": "love"},
         "reviewer": {"S": '{"id": "rv1", "name": "Jane"}'}, "reviewer_id": {"S": "rv1"},
         "viewport": {"S": '{"width": 1440, "height": 900}'}, "resolved": {"BOOL": False},
         "timestamp": {"S": "2026-11-24T10:00:01.000Z"}, "created_at": {"S": "2026-11-24T10:00:01.000Z"},
         "sort_key": {"S": "2026-11-24T10:00:01.000Z#spk_cbkxsp5zlmh5c4nptp5ce"}}]}


def test_the_first_versions_account_share_and_feedback_serve_every_client_path(client):
    settings = deps.settings()
    _account()
    _session_before_idle_expiry("first-version-session", clock.epoch() - 86400)
    for logical, items in FIRST_VERSION_ITEMS.items():
        for item in items:
            deps.dynamodb_client().put_item(TableName=table_name(settings, logical), Item=item)
    deps.s3_client().put_object(Bucket=settings.bucket_name, Key=f"shares/{SHARE_ID}/index.html",
                                Body=b"<html>hi</html>", ContentType="text/html")
    create_tables(settings, deps.dynamodb_client())  # the upgraded server's start (or deploy)
    token = "first-version-session"

    [listed] = call(client, "GET", "/shares", token=token)[1]
    assert (listed["slug"], listed["spike_count"]) == ("alice-site", 1)
    [spike] = call(client, "GET", "/spikes", token=token)[1]["data"]
    assert (spike["id"], spike["reviewer"], spike["viewport"]) == (
        "spk_cbkxsp5zlmh5c4nptp5ce", {"id": "rv1", "name": "Jane"}, {"width": 1440, "height": 900})
    assert call(client, "GET", "/spikes?project=alice-site")[1]["data"][0]["id"] == spike["id"]
    assert call(client, "GET", f"/spikes/{spike['id']}", token=token)[0] == 200
    assert call(client, "GET", "/spikes/export", token=token)[0] == 200
    assert call(client, "GET", "/usage", token=token)[0] == 200
    assert client.http.get("/s/alice-site/").status_code == 200
    # The widget's retry of the same post is the stored spike, not a second one; a new one counts.
    widget = {"id": "alicewidget0000000000", "type": "page", "projectKey": "alice-site", "comments": "again"}
    assert call(client, "POST", "/spikes", widget)[0] == 201
    assert call(client, "POST", "/spikes", {**widget, "id": "after-upgrade"})[0] == 201
    assert call(client, "GET", f"/shares/{SHARE_ID}", token=token)[1]["spike_count"] == 2
    status, body, _ = call(client, "PATCH", f"/spikes/{spike['id']}", {"resolved": True}, token=token)
    assert (status, body["resolved"]) == (200, True)
    assert call(client, "DELETE", f"/spikes/{spike['id']}", token=token)[0] == 200
    status, body, _ = call(client, "DELETE", f"/shares/{SHARE_ID}", token=token)
    assert status == 200 and [s["id"] for s in body["exported_spikes"]] == ["after-upgrade"]
    assert call(client, "GET", "/shares", token=token)[1] == []


def test_deletions_and_uploads_an_earlier_version_listed_in_the_ledger_are_finished_after_the_upgrade(
        client, user_token):
    """That version listed the share_deletions job's work as members of three ledger items
    (string sets); this one keeps it as items of its own (store/share_work.py). What the version
    before left in the sets, or wrote there during the deploy, is moved out by the job and done:
    a deletion it started is finished, the files of a direct upload whose function died are
    removed, a presigned upload never completed is expired once a day old (not before)."""
    from chalicelib.store import ledger, share_work
    from chalicelib.store.models import LedgerItem
    from tests.factories import queued
    from tests.test_shares import _run_share_job, s3_keys, share_site, user_of

    def as_that_version(work_set: str, member: str) -> None:
        LedgerItem(work_set).update(actions=[LedgerItem.members.add({member})])

    deleting = share_site(client, user_token, "Half deleted")  # its tombstone, as that version wrote it
    Share(f"share#{deleting['share_id']}").update(actions=[Share.status.set("deleting")])
    User(user_of("owner@example.com").user_id).update(actions=[User.active_shares.add(-1)])
    as_that_version("deletions#shares", deleting["share_id"])
    now = clock.epoch()
    deps.s3_client().put_object(Bucket=deps.settings().bucket_name, Key="shares/sh_diedmidway0/index.html", Body=b"x")
    as_that_version("uploads#shares", f"sh_diedmidway0@{int(now) - 3600}")
    base = clock.now()
    clock.use(lambda: base - timedelta(hours=23))
    try:
        pending = make_share("owner@example.com", "never-completed", status="pending")
    finally:
        clock.use(None)
    as_that_version("uploads#presigned", f"{pending.share_id}@{int(now) - 23 * 3600}")

    result = _run_share_job(client)
    assert (result["finished"], result["abandoned_uploads_removed"], result["unfinished_uploads_expired"]) == (1, 1, 0)
    assert [ledger.members(work_set) for work_set in ("deletions#shares", "uploads#shares", "uploads#presigned")] == \
        [[], [], []]
    assert Share.get(f"share#{pending.share_id}").status == "pending"  # a day old only in an hour
    assert queued(share_work.PRESIGNED_UPLOADS) == [f"{pending.share_id}@{int(now) - 23 * 3600}"]
    assert s3_keys(f"shares/{deleting['share_id']}/") == [] and s3_keys("shares/sh_diedmidway0/") == []
    assert call(client, "GET", f"/shares/{deleting['share_id']}", token=user_token)[0] == 404

    assert _run_share_job(client, timedelta(hours=1, minutes=1))["unfinished_uploads_expired"] == 1
    _run_share_job(client, timedelta(hours=1, minutes=17))  # its look once no completion can run (222)
    assert queued(share_work.PRESIGNED_UPLOADS) == [] and queued(share_work.DELETIONS) == []
    assert user_of("owner@example.com").active_shares == 0
