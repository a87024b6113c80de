"""Crash points: a function killed between any two writes of a multi-step operation.

For each operation below, a clean run counts its writes (DynamoDB writes and transactions, S3
puts, copies and deletes, SES sends). Then, for every N, the operation runs again on fresh
objects with the client-layer injector armed to kill the function just before its N-th write
(and to fail every AWS call after it: the process is gone). Then what happens in production
happens: the client retries the same request (the widget its post, Stripe its event, the owner
the deletion or the completion, the CLI its upload), and the scheduled functions run. The
stored data must then be consistent (tests/reliability/invariants.py) and the operation done.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Dict, List

import pytest
import requests

from chalicelib import clock, deps
from chalicelib.services import webhook_delivery
from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import Delivery, Share, User
from tests.conftest import call, sign_in
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription
from tests.reliability import summary
from tests.reliability.faults import FAULTS, SimulatedCrash
from tests.reliability.jobs import quota_reset_until_done
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


@dataclass
class Operation:
    """``prepare`` makes fresh objects (no crash), ``act`` is the request or job that crashes,
    ``retry`` what the client does next, ``done`` asserts the operation's own outcome."""
    name: str
    prepare: Callable[[World], Dict[str, Any]]
    act: Callable[[World, Dict[str, Any]], Any]
    retry: Callable[[World, Dict[str, Any]], Any]
    done: Callable[[World, Dict[str, Any]], None]


@contextlib.contextmanager
def _at(moment):
    """Our code reads the time from ``chalicelib.clock``: the jobs run at ``moment``."""
    clock.use(lambda: moment)
    try:
        yield
    finally:
        clock.use(None)


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
    with _at(ctx["now"]):
        return quota_reset_until_done(world.client)


def done_quota(world: World, ctx: dict) -> None:
    for user_id, share_id in ctx["users"]:
        user = User.get(user_id, consistent_read=True)
        assert user.tier == "free" and user.grace_until is None, (user.tier, user.grace_until)
        assert Share.get(f"share#{share_id}").status == "locked"
    period = clock.current_period(ctx["now"])
    job = Store.in_process().ledger()[f"job#quota-reset#{period}"]
    assert job["state"] == "done", job


OPERATIONS = [
    Operation("POST /spikes", prepare_post, act_post, act_post, done_post),
    Operation("POST /shares", prepare_upload, act_upload, act_upload, done_upload),
    Operation("DELETE /shares", prepare_delete, act_delete, act_delete, done_delete),
    Operation("POST /shares/{key}/complete", prepare_complete, act_complete, act_complete, done_complete),
    Operation("PATCH /spikes/{id}", prepare_resolve, act_resolve, act_resolve, done_resolve),
    Operation("DELETE /spikes/{id}", prepare_delete_spike, act_delete_spike, act_delete_spike, done_delete_spike),
    Operation("POST /webhooks/stripe (downgrade)", prepare_downgrade, act_downgrade, act_downgrade, done_downgrade),
    Operation("webhook_deliveries job", prepare_delivery, act_delivery, lambda w, c: None, done_delivery),
    Operation("quota_reset job", prepare_quota, act_quota, act_quota, done_quota),
]


def _run_jobs(world: World, ctx: dict) -> None:
    """What the schedules do next: every job, as its own function; deliveries whose claim or
    backoff is still running are due an hour later."""
    client = world.client
    later = clock.now() + timedelta(hours=1)
    with _at(later):
        assert client.lambda_.invoke("share_deletions", SCHEDULE_EVENT).payload.get("failed", 0) == 0
        webhook_delivery.run_due(deps.settings(), now_fn=later.timestamp, mailer=deps.mailer())
    with _at(ctx.get("now") or clock.now()):
        quota_reset_until_done(client)


@pytest.fixture
def world(app_client, env):
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="2", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        JOB_PAGE_SIZE="1")
    receiver = Receiver()
    token = sign_in(app_client, OWNER)
    make_pro(OWNER)
    hooked = share_site(app_client, token, "Hooked", webhook_url=receiver.url)
    yield World(app_client, token, receiver, hooked)
    receiver.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_a_crash_between_any_two_writes_is_completed_by_the_retry_or_the_job(world, operation):
    ctx = operation.prepare(world)
    with FAULTS.counting() as counter:
        operation.act(world, ctx)
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
