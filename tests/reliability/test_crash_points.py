"""Crash points: a function killed between any two writes of a multi-step operation.

For each operation below, a clean run counts its writes (DynamoDB writes and transactions, S3
puts, copies and deletes, multipart uploads' creation, parts, completion and abort, SES sends).
Then, for every N, the operation runs again on fresh objects with the client-layer injector
armed to kill the function just before its N-th write (and to fail every AWS call after it: the
process is gone). Then what happens in production happens: the client retries the same request
(the widget its post, Stripe its event, the owner the deletion or the completion, the CLI its
upload, an export's start never answered), and the scheduled functions run. The stored data
must then be consistent (tests/reliability/invariants.py) and the operation done.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests

from chalicelib import clock, deps
from chalicelib.services import share_cleanup, share_deletion, webhook_delivery
from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import Delivery, Share, User
from tests.conftest import call, sign_in
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription
from tests.reliability import exports, summary
from tests.reliability.faults import FAULTS, SimulatedCrash
from tests.reliability.jobs import at, quota_reset_until_done
from tests.reliability.invariants import Store, lost_spikes, problems
from tests.test_outbound_webhooks import Receiver
from tests.test_shares import INDEX, make_pro, share_site, start_presigned, upload
from tests.test_usage import SCHEDULE_EVENT

OWNER = "owner@example.com"


@dataclass
class World:
    client: Any
    token: str
    receiver: Receiver
    hooked: dict
    # Spikes removed with their share or one by one, per share and per owner: the period
    # counters and the usage keep counting them.
    deleted: Counter = field(default_factory=Counter)
    monkeypatch: Any = None
    exported: Optional[dict] = None  # the share background exports read, made once
    export_moments: Any = None  # when the last export started


@dataclass
class Operation:
    """``prepare`` makes fresh objects (no crash), ``act`` is the request or job that crashes,
    ``retry`` what the client does next, ``done`` asserts the operation's own outcome."""
    name: str
    prepare: Callable[[World], Dict[str, Any]]
    act: Callable[[World, Dict[str, Any]], Any]
    retry: Callable[[World, Dict[str, Any]], Any]
    done: Callable[[World, Dict[str, Any]], None]
    # What the client reads right after the answer (crashed or not), before anything else runs.
    after: Callable[[World, Dict[str, Any]], None] = lambda world, ctx: None




def _post(world: World, project: str, spike_id: str):
    return call(world.client, "POST", "/spikes", {"type": "page", "projectKey": project, "id": spike_id,
                                                  "comments": "crash test"})


# --- the operations --------------------------------------------------------------------------

def _fresh_id(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns()}"


def prepare_post(world: World) -> dict:
    return {"id": _fresh_id("post")}


def act_post(world: World, ctx: dict):
    return _post(world, world.hooked["slug"], ctx["id"])


def done_post(world: World, ctx: dict) -> None:
    assert lost_spikes(Store.in_process(), [ctx["id"]]) == []
    assert [d for d in Delivery.share_index.query(world.hooked["share_id"])
            if json.loads(d.body).get("spike", {}).get("id") == ctx["id"]], "no spike.created event"


def prepare_upload(world: World) -> dict:
    return {"name": _fresh_id("upload")}


def act_upload(world: World, ctx: dict):
    status, body, _ = upload(world.client, world.token, [("index.html", INDEX), ("css/site.css", b"h1{}")],
                             {"name": ctx["name"]})
    ctx["answer"] = (status, body)
    return status


def done_upload(world: World, ctx: dict) -> None:
    status, body = ctx["answer"]
    assert status == 201, body
    assert call(world.client, "GET", f"/s/{body['slug']}/css/site.css")[0] == 200


def prepare_delete(world: World) -> dict:
    share = share_site(world.client, world.token, _fresh_id("doomed"))
    for n in range(2):
        assert _post(world, share["slug"], f"{share['share_id']}-{n}")[0] == 201
    world.deleted[user_id_for(OWNER)] += 2
    return {"share": share}


def act_delete(world: World, ctx: dict):
    return call(world.client, "DELETE", f"/shares/{ctx['share']['share_id']}", token=world.token)[0]


def done_delete(world: World, ctx: dict) -> None:
    assert ctx["share"]["share_id"] not in Store.in_process().shares()


@contextlib.contextmanager
def _deletion_outlasts_its_request():
    """The request answers before deleting any spike (as one of a large share does after
    ``REQUEST_DELETION_SECONDS``): the rest is the share_deletions job's."""
    saved = share_deletion.REQUEST_DELETION_SECONDS
    share_deletion.REQUEST_DELETION_SECONDS = 0
    try:
        yield
    finally:
        share_deletion.REQUEST_DELETION_SECONDS = saved


def _owner_lists(world: World, share_id: str) -> List[str]:
    """The owner's spikes of ``share_id`` their own listing shows (the CLI's pull)."""
    listed = call(world.client, "GET", "/spikes?limit=1000", token=world.token)[1]["data"]
    return [spike["id"] for spike in listed if spike["id"].startswith(share_id)]


def _doomed_with_spikes(world: World, count: int, name: str = "") -> dict:
    share = share_site(world.client, world.token, name or _fresh_id("doomed"))
    for n in range(count):
        assert _post(world, share["slug"], f"{share['share_id']}-{n}")[0] == 201
    world.deleted[user_id_for(OWNER)] += count
    return share


def prepare_unretried_delete(world: World) -> dict:
    return {"share": _doomed_with_spikes(world, 2)}


def act_unretried_delete(world: World, ctx: dict):
    ctx["status"] = act_delete(world, ctx)
    return ctx["status"]


def done_unretried_delete(world: World, ctx: dict) -> None:
    """Nobody retries (the dashboard closed): the share is whole, or gone with everything of it.
    Answered 200, its spikes had left the owner's listing already."""
    share_id = ctx["share"]["share_id"]
    if ctx.get("status") == 200 or ctx["deleting_after_answer"]:
        assert ctx["listed_after_answer"] == [], ctx["listed_after_answer"]
    share = Store.in_process().shares().get(share_id)
    if share is not None:  # killed before the tombstone: nothing of it deleted, nothing hidden
        assert share["status"] == "active", share["status"]
        assert sorted(_owner_lists(world, share_id)) == [f"{share_id}-0", f"{share_id}-1"]
        assert call(world.client, "DELETE", f"/shares/{share_id}", token=world.token)[0] == 200


def after_unretried_delete(world: World, ctx: dict) -> None:
    """What the owner sees right after the answer (before any job runs)."""
    share = Store.in_process().shares().get(ctx["share"]["share_id"])
    ctx["deleting_after_answer"] = share is not None and share["status"] == "deleting"
    ctx["listed_after_answer"] = _owner_lists(world, ctx["share"]["share_id"])


# Over one BatchWriteItem (25): the job's deletion crashes between two batches of spikes too.
LONG_DELETION_SPIKES = 27


def prepare_long_deletion(world: World) -> dict:
    share = _doomed_with_spikes(world, LONG_DELETION_SPIKES)
    with _deletion_outlasts_its_request():
        assert act_delete(world, {"share": share}) == 200
    assert len(_owner_lists(world, share["share_id"])) == 0  # hidden while the job removes them
    return {"share": share}


def act_long_deletion(world: World, ctx: dict):
    # What the scheduled function's first step runs (its other steps have their own units).
    return share_cleanup.finish_pending_deletions(deps.share_files(), clock.epoch())


def done_long_deletion(world: World, ctx: dict) -> None:
    share_id = ctx["share"]["share_id"]
    assert share_id not in Store.in_process().shares()
    assert not [s for s in Store.in_process().spikes() if s.get("share_id") == share_id]


def prepare_reshare(world: World) -> dict:
    """A share whose deletion outlasted its request, its slug to be shared again by its owner."""
    name = _fresh_id("again")
    old = _doomed_with_spikes(world, 2, name)
    with _deletion_outlasts_its_request():
        assert act_delete(world, {"share": old}) == 200
    return {"old": old, "name": name}


def act_reshare(world: World, ctx: dict):
    status, body, _ = upload(world.client, world.token, [("index.html", INDEX)], {"name": ctx["name"]})
    ctx.setdefault("answers", []).append((status, body))
    return status


def retry_reshare(world: World, ctx: dict):
    if not any(status == 201 for status, _ in ctx.get("answers", [])):
        return act_reshare(world, ctx)
    return None


def done_reshare(world: World, ctx: dict) -> None:
    """The slug serves a live share of the owner's (the first attempt's, when its answer was
    lost, or the retry's), after the old deletion ended (when the jobs ran) or before; its
    feedback is its own."""
    slug = ctx["old"]["slug"]
    store = Store.in_process()
    claimed = store.slugs().get(slug)
    assert claimed is not None and claimed != ctx["old"]["share_id"], claimed
    assert store.shares()[claimed]["owner_id"] == user_id_for(OWNER)
    assert call(world.client, "GET", f"/s/{slug}/")[0] == 200
    spike_id = _fresh_id("kept")
    assert _post(world, slug, spike_id)[0] == 201
    listed = call(world.client, "GET", f"/spikes?project={slug}")[1]["data"]
    assert [spike["id"] for spike in listed] == [spike_id]


# When the share_deletions job treats a presigned upload as never completed: a day and more.
UPLOADS_EXPIRED = timedelta(days=2)


def _presigned_files() -> List[dict]:
    return [{"path": "index.html", "size": len(INDEX), "content_type": "text/html"}]


def prepare_start(world: World) -> dict:
    return {"name": _fresh_id("started"), "job_at": clock.now() + UPLOADS_EXPIRED}


def act_start(world: World, ctx: dict):
    status, body, _ = start_presigned(world.client, world.token, _presigned_files(), name=ctx["name"])
    ctx["started"] = body if status == 201 else None
    return status


def retry_start(world: World, ctx: dict):
    """A day on, the job removes what a start killed midway left (a unit, a pending share), then
    the CLI starts again (its first answer never came)."""
    with at(ctx["job_at"]):
        assert world.client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload["unfinished_uploads_failed"] == 0
    if ctx.get("started") is None:
        act_start(world, ctx)


def done_start(world: World, ctx: dict) -> None:
    """The answered upload completes and is served."""
    started = ctx["started"]
    assert started is not None
    [target] = started["uploads"]
    assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    assert call(world.client, "POST", f"/shares/{started['share_id']}/complete", token=world.token)[0] == 200
    assert call(world.client, "GET", f"/s/{started['slug']}/")[0] == 200


def prepare_unfinished(world: World) -> dict:
    status, body, _ = start_presigned(world.client, world.token, _presigned_files(), name=_fresh_id("unfinished"))
    assert status == 201, body
    [target] = body["uploads"]
    assert requests.put(target["url"], data=INDEX, headers=target["headers"], timeout=10).status_code == 200
    return {"share": body, "job_at": clock.now() + UPLOADS_EXPIRED}


def act_expire(world: World, ctx: dict):
    with at(ctx["job_at"]):
        return world.client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload


def done_expired(world: World, ctx: dict) -> None:
    """Never completed: the share is gone, its staged files too, its place in the limit given
    back (the invariants count ``active_shares``)."""
    share_id = ctx["share"]["share_id"]
    store = Store.in_process()
    assert share_id not in store.shares()
    assert not [key for key in store.objects if share_id in key]


def prepare_complete(world: World) -> dict:
    status, body, _ = start_presigned(world.client, world.token, [
        {"path": "index.html", "size": len(INDEX), "content_type": "text/html"},
        {"path": "css/site.css", "size": 4, "content_type": "text/css"}], name=_fresh_id("presigned"))
    assert status == 201, body
    for target, data in zip(body["uploads"], (INDEX, b"h1{}")):
        assert requests.put(target["url"], data=data, headers=target["headers"], timeout=10).status_code == 200
    return {"share": body}


def act_complete(world: World, ctx: dict):
    return call(world.client, "POST", f"/shares/{ctx['share']['share_id']}/complete", token=world.token)[0]


def done_complete(world: World, ctx: dict) -> None:
    assert Store.in_process().shares()[ctx["share"]["share_id"]]["status"] == "active"
    assert call(world.client, "GET", f"/s/{ctx['share']['slug']}/css/site.css")[0] == 200


def prepare_resolve(world: World) -> dict:
    spike_id = _fresh_id("resolve")
    assert _post(world, world.hooked["slug"], spike_id)[0] == 201
    return {"id": spike_id}


def act_resolve(world: World, ctx: dict):
    return call(world.client, "PATCH", f"/spikes/{ctx['id']}", {"resolved": True}, token=world.token)[0]


def done_resolve(world: World, ctx: dict) -> None:
    status, body, _ = call(world.client, "GET", f"/spikes/{ctx['id']}", token=world.token)
    assert status == 200 and body["resolved"] is True, body
    events = [json.loads(d.body)["type"] for d in Delivery.share_index.query(world.hooked["share_id"])
              if json.loads(d.body).get("spike", {}).get("id") == ctx["id"]]
    assert events.count("spike.resolved") == 1, events


def prepare_delete_spike(world: World) -> dict:
    spike_id = _fresh_id("gone")
    assert _post(world, world.hooked["slug"], spike_id)[0] == 201
    world.deleted[user_id_for(OWNER)] += 1
    world.deleted[world.hooked["share_id"]] += 1
    return {"id": spike_id}


def act_delete_spike(world: World, ctx: dict):
    return call(world.client, "DELETE", f"/spikes/{ctx['id']}", token=world.token)[0]


def done_delete_spike(world: World, ctx: dict) -> None:
    assert ctx["id"] not in Store.in_process().spike_ids()


def prepare_downgrade(world: World) -> dict:
    email = f"{_fresh_id('payer')}@example.com"
    token = sign_in(world.client, email)
    make_pro(email)
    hooked = share_site(world.client, token, "Paid hook", webhook_url=world.receiver.url)
    vault = share_site(world.client, token, "Paid vault", password="pro-password")
    user_id = user_id_for(email)
    User.get(user_id).update(actions=[User.stripe_customer_id.set(f"cus_{user_id[:8]}")])
    evt = event("customer.subscription.deleted", subscription("canceled", user_id, sub_id=f"sub_{user_id[:8]}",
                                                               customer=f"cus_{user_id[:8]}"), int(time.time()))
    return {"user_id": user_id, "event": evt, "shares": [hooked["share_id"], vault["share_id"]]}


def act_downgrade(world: World, ctx: dict):
    raw, headers = signed(ctx["event"])
    return call(world.client, "POST", "/webhooks/stripe", raw=raw, headers=headers)[0]


def done_downgrade(world: World, ctx: dict) -> None:
    user = User.get(ctx["user_id"], consistent_read=True)
    assert user.tier == "free", user.tier
    hooked, vault = (Share.get(f"share#{share_id}") for share_id in ctx["shares"])
    assert hooked.webhook_url is None and vault.status == "locked", (hooked.webhook_url, vault.status)
    assert f"stripe-event#{ctx['event']['id']}" in Store.in_process().ledger()


def prepare_delivery(world: World) -> dict:
    spike_id = _fresh_id("deliver")
    assert _post(world, world.hooked["slug"], spike_id)[0] == 201
    return {"id": spike_id}


def act_delivery(world: World, ctx: dict):
    # What the scheduled function runs (invoked through the test client it sees no time left).
    return webhook_delivery.run_due(deps.settings(), mailer=deps.mailer())


def done_delivery(world: World, ctx: dict) -> None:
    received = [json.loads(r["body"]) for r in world.receiver.requests]
    assert any(p["type"] == "spike.created" and p["spike"]["id"] == ctx["id"] for p in received)


def prepare_quota(world: World) -> dict:
    """Users whose grace period has run out, with Pro features to strip, and a fresh period."""
    users = []
    for n in range(2):
        email = f"{_fresh_id('lapsed')}-{n}@example.com"
        token = sign_in(world.client, email)
        make_pro(email)
        vault = share_site(world.client, token, "Lapsed vault", password="lapsed-password")
        User.get(user_id_for(email)).update(actions=[User.grace_until.set(int(time.time()) - 60)])
        users.append((user_id_for(email), vault["share_id"]))
    # Each crash point gets a period of its own (a month further on), so the pass has work to do.
    world_moment = clock.now() + timedelta(days=31 * (1 + len(_quota_moments)))
    _quota_moments.append(world_moment)
    return {"users": users, "now": world_moment}


_quota_moments: List[Any] = []


def act_quota(world: World, ctx: dict):
    with at(ctx["now"]):
        return quota_reset_until_done(world.client)


def done_quota(world: World, ctx: dict) -> None:
    for user_id, share_id in ctx["users"]:
        user = User.get(user_id, consistent_read=True)
        assert user.tier == "free" and user.grace_until is None, (user.tier, user.grace_until)
        assert Share.get(f"share#{share_id}").status == "locked"
    period = clock.current_period(ctx["now"])
    job = Store.in_process().ledger()[f"job#quota-reset#{period}"]
    assert job["state"] == "done", job


def prepare_export(world: World) -> dict:
    """Each export starts 7 hours after the last: past the deadline of the running-export slot
    a start killed after taking it holds (store/export_slots.py), so every start takes the
    first slot, free or run out, in one write."""
    if world.exported is None:
        exports.small_parts_and_short_runs(world.monkeypatch)
        world.exported = exports.exported_share(world.client, world.token, "Exported")
        world.export_moments = clock.now()
    world.export_moments += timedelta(hours=7)
    return {"share": world.exported, "at": world.export_moments}


# Runs enough for the export with room to spare (it takes about ten), each a turn of a few rows.
EXPORT_RUNS = 40


def _runs_until_done(world: World, ctx: dict, moment: Callable[[int], Any]) -> None:
    """The scheduled function, run after run at ``moment(run)``, the client polling the export,
    until it ended and no export is due any more."""
    for run in range(EXPORT_RUNS):
        ctx["last_run"] = moment(run)
        with at(ctx["last_run"]):
            due = exports.job_run(world.client)["pending"]
            shown = exports.poll(world.client, world.token, ctx["id"])[1]
        if shown["status"] != "running" and not due:
            return


def _start_export(world: World, ctx: dict) -> None:
    with at(ctx["at"]):
        status, shown, _ = exports.start(world.client, world.token, ctx["share"], "csv")
    assert status == 202, shown
    ctx["id"] = shown["id"]


def act_export(world: World, ctx: dict):
    """The request's turn, then the scheduled function's runs (each continued at once)."""
    _start_export(world, ctx)
    _runs_until_done(world, ctx, lambda run: ctx["at"])


def retry_export(world: World, ctx: dict):
    """The client starts again when its start was never answered; the scheduled function runs
    every few minutes, the first time once the lease of a run that died ran out."""
    if "id" not in ctx:
        _start_export(world, ctx)
    later = ctx["at"] + timedelta(hours=1)
    _runs_until_done(world, ctx, lambda run: later + timedelta(minutes=6 * run))


def done_export(world: World, ctx: dict) -> None:
    """Done (it fails only past its 6 hours), the file one ``GET /spikes/export`` answers, no
    multipart upload left open by it or any other export that ended, their running-export
    slots free again, and no export (one whose start was never answered) left running for no
    run to take."""
    with at(ctx["last_run"]):
        status, shown, _ = exports.poll(world.client, world.token, ctx["id"])
        assert status == 200 and shown["status"] == "done", shown
        assert shown["spike_count"] == exports.MATCHING, shown
        one_shot = exports.one_shot(world.client, world.token, ctx["share"], "csv")
    assert exports.downloaded(shown["download_url"]) == one_shot
    store = Store.in_process()
    assert exports.unfinished_uploads(store) == []
    assert exports.slots_held_by_ended_exports(store) == []
    assert exports.running_without_a_unit(store) == []


OPERATIONS = [
    Operation("POST /spikes", prepare_post, act_post, act_post, done_post),
    Operation("POST /shares", prepare_upload, act_upload, act_upload, done_upload),
    Operation("DELETE /shares", prepare_delete, act_delete, act_delete, done_delete),
    Operation("DELETE /shares (never retried)", prepare_unretried_delete, act_unretried_delete,
              lambda w, c: None, done_unretried_delete, after_unretried_delete),
    Operation("share_deletions job (a deletion that outlasted its request)", prepare_long_deletion,
              act_long_deletion, lambda w, c: None, done_long_deletion),
    Operation("POST /shares (the slug of a share being deleted)", prepare_reshare, act_reshare, retry_reshare,
              done_reshare),
    Operation("POST /shares/uploads", prepare_start, act_start, retry_start, done_start),
    Operation("share_deletions job (an upload never completed)", prepare_unfinished, act_expire, act_expire,
              done_expired),
    Operation("POST /shares/{key}/complete", prepare_complete, act_complete, act_complete, done_complete),
    Operation("PATCH /spikes/{id}", prepare_resolve, act_resolve, act_resolve, done_resolve),
    Operation("DELETE /spikes/{id}", prepare_delete_spike, act_delete_spike, act_delete_spike, done_delete_spike),
    Operation("POST /webhooks/stripe (downgrade)", prepare_downgrade, act_downgrade, act_downgrade, done_downgrade),
    Operation("webhook_deliveries job", prepare_delivery, act_delivery, lambda w, c: None, done_delivery),
    Operation("quota_reset job", prepare_quota, act_quota, act_quota, done_quota),
    Operation("POST /exports and the exports job", prepare_export, act_export, retry_export, done_export),
]


def _run_jobs(world: World, ctx: dict) -> None:
    """What the schedules do next: every job, as its own function; deliveries whose claim or
    backoff is still running are due an hour later."""
    client = world.client
    later = clock.now() + timedelta(hours=1)
    with at(later):
        assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload.get("failed", 0) == 0
        webhook_delivery.run_due(deps.settings(), now_fn=later.timestamp, mailer=deps.mailer())
    with at(ctx.get("now") or clock.now()):
        quota_reset_until_done(client)


@pytest.fixture
def world(app_client, env, monkeypatch):
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="2", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        JOB_PAGE_SIZE="1")
    receiver = Receiver()
    token = sign_in(app_client, OWNER)
    make_pro(OWNER)
    hooked = share_site(app_client, token, "Hooked", webhook_url=receiver.url)
    yield World(app_client, token, receiver, hooked, monkeypatch=monkeypatch)
    receiver.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_a_crash_between_any_two_writes_is_completed_by_the_retry_or_the_job(world, operation):
    ctx = operation.prepare(world)
    with FAULTS.counting() as counter:
        operation.act(world, ctx)
    operation.after(world, ctx)
    writes, log = counter.writes, list(counter.write_log)
    assert writes >= 1, f"{operation.name} wrote nothing"
    operation.done(world, ctx)
    _run_jobs(world, ctx)

    failures = []
    for crash_at in range(1, writes + 1):
        ctx = operation.prepare(world)
        crashed = False
        with FAULTS.crashing_at(crash_at):
            try:
                operation.act(world, ctx)
            except SimulatedCrash:
                crashed = True
        operation.after(world, ctx)
        summary.add("crash points tried")
        # The client retries, the schedules run.
        operation.retry(world, ctx)
        _run_jobs(world, ctx)
        try:
            operation.done(world, ctx)
            found = problems(Store.in_process(), deleted_since=dict(world.deleted))
            assert found == [], "\n".join(found)
        except AssertionError as exc:
            failures.append(f"killed before write {crash_at}/{writes} ({log[crash_at - 1]}, crashed={crashed}): {exc}")
        if not crashed:
            failures.append(f"the run wrote fewer than {crash_at} times this time: crash point not reached")
    assert failures == [], "\n\n".join(failures)
