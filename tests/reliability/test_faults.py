"""Faults: DynamoDB throttling, transaction conflicts and unavailability, S3 and SES errors,
dropped connections and Stripe timeouts, injected at the client layer (tests/reliability/faults.py)
while posts, uploads, share deletions, Stripe events, sign-in mails, checkouts, outbound webhook
deliveries and the quota reset run.

While a fault is armed (every second matching send fails, seeded), each request must succeed or
answer a retryable error: 503 with ``Retry-After``. A scheduled job may fail (the next schedule
runs it again). Then the faults stop, clients retry what failed (the same spike ids, the same
Stripe events, the same deletions), the jobs run, and the stored data must be consistent:
counters equal stored spikes, no orphan S3 object, no lost spike, Stripe event or webhook event.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import List, Optional, Tuple

import pytest

from chalicelib import clock, deps
from chalicelib.services import webhook_delivery
from chalicelib.services.accounts import user_id_for
from chalicelib.store.models import Delivery, User
from tests.conftest import call, sent_mails, sign_in
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription
from tests.reliability import exports, summary
from tests.reliability.faults import FAULTS, Fault
from tests.reliability.jobs import at, quota_reset_until_done
from tests.reliability.invariants import Store, lost_spikes, problems
from tests.test_outbound_webhooks import Receiver
from tests.test_shares import make_pro, share_site, upload
from tests.test_usage import SCHEDULE_EVENT

FAULT_PLANS: List[Tuple[str, str]] = [
    ("dynamodb", "throttle"), ("dynamodb", "conflict"), ("dynamodb", "unavailable"), ("dynamodb", "disconnect"),
    ("s3", "throttle"), ("s3", "unavailable"), ("s3", "disconnect"),
    ("ses", "throttle"), ("ses", "unavailable"),
    ("stripe", "timeout"),
]
POSTS_PER_ROUND = 8
SPIKES_PER_DOOMED_SHARE = 2
PAYER = "payer@example.com"


class Outcomes:
    """Every answer given while faults were armed: 2xx, or 503 with Retry-After."""

    def __init__(self) -> None:
        self.bad: List[str] = []
        self.retryable = 0
        self.ok = 0

    def check(self, what: str, status: int, headers) -> bool:
        if 200 <= status < 300:
            self.ok += 1
            return True
        if status == 503 and str(headers.get("Retry-After", "")).isdigit():
            self.retryable += 1
            return False
        self.bad.append(f"{what} -> {status}")
        return False


def _post(client, share: dict, spike_id: str):
    return call(client, "POST", "/spikes", {"type": "page", "projectKey": share["slug"], "id": spike_id,
                                            "comments": f"comment {spike_id}", "rating": "like"})


def _stripe_event(created: int, status: str) -> dict:
    return event("customer.subscription.updated",
                 subscription(status, user_id_for(PAYER), sub_id="sub_payer", customer="cus_payer"), created)


def _job(client, name: str) -> Optional[dict]:
    """A scheduled function's run; a failure is a failed invocation (the schedule runs it again)."""
    try:
        return client.lambda_.invoke(name, SCHEDULE_EVENT).payload
    except Exception as exc:  # noqa: BLE001 - what EventBridge would see: the invocation failed
        return {"failed": type(exc).__name__}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_faults_at_every_dependency_lose_nothing(app_client, env, stripe_api, receiver):
    client = app_client
    env(WEBHOOK_ALLOW_LOOPBACK="true", WEBHOOK_TIMEOUT_SECONDS="2", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_SECRET_KEY=stripe_api.api_key, STRIPE_PRICE_ID="price_pro", STRIPE_API_BASE=stripe_api.url,
        STRIPE_MAX_NETWORK_RETRIES="0", STRIPE_TIMEOUT_SECONDS="1", JOB_PAGE_SIZE="2",
        BILLING_SUCCESS_URL="https://app.example/thanks", BILLING_CANCEL_URL="https://app.example/pricing")
    token = sign_in(client, "owner@example.com")
    make_pro("owner@example.com")
    hooked = share_site(client, token, "Hooked", webhook_url=receiver.url)
    buyer_token = sign_in(client, "buyer@example.com")  # free: a checkout calls Stripe
    User(user_id_for(PAYER), email=PAYER, tier="free", created_at="2026-01-01T00:00:00Z",
         stripe_customer_id="cus_payer").save()

    outcomes = Outcomes()
    accepted: List[str] = []
    unanswered_posts: List[str] = []
    stripe_events: List[dict] = []
    unapplied_events: List[dict] = []
    doomed: List[dict] = []
    undeleted: List[dict] = []
    created_shares: List[dict] = []
    unsent_logins: List[str] = []
    checkout_failures = 0
    created = int(time.time()) - 3600
    statuses = ["active", "past_due"]

    for round_number, (service, kind) in enumerate(FAULT_PLANS):
        # Made before the faults: a share to delete while they are armed, with spikes on it.
        victim = share_site(client, token, f"Doomed {round_number}")
        for n in range(SPIKES_PER_DOOMED_SHARE):
            assert _post(client, victim, f"doomed-{round_number}-{n}")[0] == 201
        doomed.append(victim)
        plan = [Fault(service, kind, probability=0.5, seed=round_number)] if service != "stripe" else []
        if service == "stripe":
            stripe_api.delays.extend([2.0, 2.0])  # past the 1 s timeout: the client gives up
        with FAULTS.injecting(*plan):
            for n in range(POSTS_PER_ROUND):
                spike_id = f"r{round_number}-{n}"
                status, body, headers = _post(client, hooked, spike_id)
                if outcomes.check(f"{service} {kind}: POST /spikes", status, headers):
                    assert body["id"] == spike_id
                    accepted.append(spike_id)
                else:
                    unanswered_posts.append(spike_id)
            status, body, headers = upload(client, token, metadata={"name": f"Upload {round_number}"})
            if outcomes.check(f"{service} {kind}: POST /shares", status, headers):
                created_shares.append(body)
            status, _, headers = call(client, "DELETE", f"/shares/{victim['share_id']}", token=token)
            if not outcomes.check(f"{service} {kind}: DELETE /shares", status, headers):
                undeleted.append(victim)
            for _ in range(2):
                created += 60
                evt = _stripe_event(created, statuses[len(stripe_events) % 2])
                stripe_events.append(evt)
                raw, stripe_headers = signed(evt)
                status, _, headers = call(client, "POST", "/webhooks/stripe", raw=raw, headers=stripe_headers)
                if not outcomes.check(f"{service} {kind}: POST /webhooks/stripe", status, headers):
                    unapplied_events.append(evt)
            email = f"login{round_number}@example.com"
            status, _, headers = call(client, "POST", "/auth/login", {"email": email})
            if not outcomes.check(f"{service} {kind}: POST /auth/login", status, headers):
                unsent_logins.append(email)
            status, _, headers = call(client, "POST", "/billing/checkout", {}, token=buyer_token)
            if not outcomes.check(f"{service} {kind}: POST /billing/checkout", status, headers):
                checkout_failures += 1
            receiver.answers = [500]  # the receiver fails too, once
            _job(client, "webhook_deliveries")
            _job(client, "quota_reset")
            _job(client, "share_deletions")
        if service == "stripe":  # the answers Stripe sat on past the timeout
            summary.add("faults injected", 2 - len(stripe_api.delays))
            stripe_api.delays.clear()

    assert outcomes.bad == [], "\n".join(outcomes.bad)
    assert outcomes.retryable > 0 and outcomes.ok > 0  # the faults did bite, and not everything failed
    assert checkout_failures >= 1  # the Stripe timeouts were answered 503

    # The faults stop; clients retry what failed; the jobs run.
    for spike_id in unanswered_posts:
        status, body, _ = _post(client, hooked, spike_id)
        assert status in (200, 201), body
        accepted.append(spike_id)
    for evt in unapplied_events:  # Stripe re-sends what was not acknowledged, in its own order
        raw, stripe_headers = signed(evt)
        assert call(client, "POST", "/webhooks/stripe", raw=raw, headers=stripe_headers)[0] == 200
    for victim in undeleted:
        status, body, _ = call(client, "DELETE", f"/shares/{victim['share_id']}", token=token)
        assert status in (200, 404), body  # 404: the scheduled job finished it meanwhile
    for email in unsent_logins:
        assert call(client, "POST", "/auth/login", {"email": email})[0] == 200
    assert call(client, "POST", "/billing/checkout", {}, token=buyer_token)[0] == 200
    assert _job(client, "share_deletions").get("failed", 0) == 0
    quota_reset_until_done(client)
    receiver.answers = []
    for _ in range(10):  # what the next scheduled runs do; claims and backoffs are hours behind then
        report = webhook_delivery.run_due(deps.settings(), now_fn=lambda: time.time() + 86_000, mailer=deps.mailer())
        if report.attempted == 0:
            break

    store = Store.in_process()
    deleted = {user_id_for("owner@example.com"): SPIKES_PER_DOOMED_SHARE * len(doomed)}
    found = problems(store, deleted_since=deleted)
    lost = lost_spikes(store, accepted)
    assert found == [], "\n".join(found)
    assert lost == [], lost
    assert {s["share_id"] for s in doomed} & set(store.shares()) == set()

    # No lost Stripe event: every one is recorded once, and the newest state won.
    ledger = store.ledger()
    missing = [evt["id"] for evt in stripe_events if f"stripe-event#{evt['id']}" not in ledger]
    assert missing == []
    payer = User.get(user_id_for(PAYER), consistent_read=True)
    assert payer.subscription_status == stripe_events[-1]["data"]["object"]["status"]
    assert payer.subscription_event_at == stripe_events[-1]["created"]
    # One Stripe customer for the buyer however many checkouts timed out (idempotency keys).
    buyer = User.get(user_id_for("buyer@example.com"), consistent_read=True)
    assert [c for c in stripe_api.customers.values() if c["metadata"]["user_id"] == buyer.user_id] \
        == [stripe_api.customers[buyer.stripe_customer_id]]
    # Every sign-in that was answered 200 sent its mail.
    for round_number in range(len(FAULT_PLANS)):
        assert sent_mails(f"login{round_number}@example.com"), round_number

    # No lost webhook event: every event recorded for the hooked share reached the receiver,
    # and every accepted spike has its event.
    recorded = {d.event_id: d for d in Delivery.share_index.query(hooked["share_id"])}
    received = {json.loads(r["body"])["id"]: json.loads(r["body"]) for r in receiver.requests}
    assert {d.status for d in recorded.values()} == {"delivered"}
    assert set(recorded) <= set(received)
    announced = {payload["spike"]["id"] for payload in received.values() if payload["type"] == "spike.created"}
    assert set(accepted) <= announced


def test_a_faulted_call_is_not_carried_out_and_its_retry_stores_what_was_sent():
    """The injector answers instead of AWS: moto must not carry the call out as well (botocore
    runs every before-send handler), or a "failed" write is stored, and its retry sends it again."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="faults-probe")
        with FAULTS.injecting(Fault("s3", "unavailable", operations={"PutObject"})):
            with pytest.raises(ClientError):
                s3.put_object(Bucket="faults-probe", Key="refused", Body=b"never stored")
        assert s3.list_objects_v2(Bucket="faults-probe").get("KeyCount") == 0
        with FAULTS.injecting(Fault("s3", "throttle", operations={"PutObject"}, times=1)):
            s3.put_object(Bucket="faults-probe", Key="retried", Body=b"stored once")  # botocore retries
        assert s3.get_object(Bucket="faults-probe", Key="retried")["Body"].read() == b"stored once"


def test_background_exports_under_faults_finish_into_the_same_bytes(app_client, env, monkeypatch):
    """``POST /exports`` and the ``exports`` job while DynamoDB or S3 fail every second call:
    each start answers 202 or 503 with ``Retry-After`` (never a 500), each poll 200 or 503, the
    job may fail (its schedule runs it again). Once the faults stop, the client starts again
    what was refused, and every export started ends done, its file what one ``GET
    /spikes/export`` answers (CSV and JSON lines), no multipart upload left open, its
    running-export slot free again."""
    client = app_client
    env(MAX_RUNNING_EXPORTS=exports.MAX_RUNNING)
    token = sign_in(client, "owner@example.com")
    exports.small_parts_and_short_runs(monkeypatch)
    share = exports.exported_share(client, token, "Exported")
    outcomes = Outcomes()
    started: List[Tuple[str, str]] = []  # (export id, format)
    refused: List[str] = []
    # An export writes no transaction: DynamoDB's conflicts have nothing to hit.
    plans = [(service, kind) for service, kind in FAULT_PLANS if service in ("dynamodb", "s3") and kind != "conflict"]
    for round_number, (service, kind) in enumerate(plans):
        fmt = ("csv", "jsonl")[round_number % 2]
        with FAULTS.injecting(Fault(service, kind, probability=0.5, seed=100 + round_number)):
            status, shown, headers = exports.start(client, token, share, fmt)
            if outcomes.check(f"{service} {kind}: POST /exports", status, headers):
                started.append((shown["id"], fmt))
            else:
                refused.append(fmt)
            for _ in range(2):
                with exports.short_turn():
                    _job(client, "exports")
                for export_id, _ in started:
                    status, _, headers = exports.poll(client, token, export_id)
                    outcomes.check(f"{service} {kind}: GET /exports/{{id}}", status, headers)
    assert outcomes.bad == [], "\n".join(outcomes.bad)
    assert outcomes.retryable > 0 and outcomes.ok > 0

    for fmt in refused:
        status, shown, _ = exports.start(client, token, share, fmt)
        assert status == 202, shown
        started.append((shown["id"], fmt))
    later = clock.now()
    for run in range(60):  # every 6 minutes, within the export's 6 hours (moved-back runs wait)
        with at(later + timedelta(minutes=6 * run)):
            exports.job_run(client)
            shown = {export_id: exports.poll(client, token, export_id)[1] for export_id, _ in started}
        if all(export["status"] != "running" for export in shown.values()):
            break
    for export_id, fmt in started:
        assert shown[export_id]["status"] == "done", shown[export_id]
        assert exports.downloaded(shown[export_id]["download_url"]) == exports.one_shot(client, token, share, fmt)
    store = Store.in_process()
    assert exports.unfinished_uploads(store) == []
    assert exports.slots_held_by_ended_exports(store) == []
    assert exports.running_without_a_unit(store) == []
    found = problems(store)
    assert found == [], "\n".join(found)
