"""Account data rights: every kind of item an account owns that no listing of its own shows is
found by its owner without a Scan (docs/data-model.md, "Finding an account's items"): bearer sessions,
the key-only accounts it claimed, webhook events of deleted shares, usage events in every outbox queue, pro-features checkpoints,
background exports and their files, Stripe event markers.
On moto and on DynamoDB Local."""
from __future__ import annotations

import contextlib
import time

import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import clock, deps
from chalicelib.crypto import token_hash
from chalicelib.services import quota_reset
from chalicelib.services.accounts import user_id_for
from chalicelib.store import held_charges, ledger, meter_events, owned_items, webhook_releases
from chalicelib.store.models import AuthItem, Delivery, LedgerItem, OutboxItem, Share, User
from chalicelib.store.transactions import run
from tests import dynamodb_local
from tests.conftest import _provision, call, sign_in
from tests.factories import make_share
from tests.fakes.stripe_events import WEBHOOK_SECRET, event, signed, subscription

NOW = int(time.time())


def test_a_users_bearer_sessions_are_found_by_owner(backend_client, store_backend):
    first, second = sign_in(backend_client, "owner@example.com"), sign_in(backend_client, "owner@example.com")
    other = sign_in(backend_client, "other@example.com")
    owner = user_id_for("owner@example.com")
    assert sorted(owned_items.sessions(owner)) == sorted(f"bearer#{token_hash(t)}" for t in (first, second))
    # Sign-in links and other people's sessions carry no user_id of the owner's.
    assert list(owned_items.sessions(user_id_for("other@example.com"))) == [f"bearer#{token_hash(other)}"]
    status, _, _ = call(backend_client, "POST", "/auth/logout", token=first)
    assert status in (200, 204)
    assert list(owned_items.sessions(owner)) == [f"bearer#{token_hash(second)}"]
    assert AuthItem.get(f"bearer#{token_hash(second)}").user_id == owner


def test_a_deleted_shares_webhook_events_are_found_by_owner(backend_client, store_backend):
    token = sign_in(backend_client, "hooks@example.com")
    owner = user_id_for("hooks@example.com")
    share = make_share("hooks@example.com", "hooked", tier="pro", webhook_url="https://hooks.example/x",
                       webhook_secret_nonce="nonce-1")
    make_share("bystander@example.com", "other-hooked", tier="pro", webhook_url="https://hooks.example/y",
               webhook_secret_nonce="nonce-2")
    for project in ("hooked", "other-hooked"):
        status, _, _ = call(backend_client, "POST", "/spikes", {"type": "page", "projectKey": project})
        assert status == 201
    status, _, _ = call(backend_client, "DELETE", f"/shares/{share.share_id}", token=token)
    assert status == 200
    webhook_releases.record(None, share.share_id, NOW)  # a work item: no owner, not listed
    events = list(owned_items.webhook_events(owner))
    assert sorted(Delivery.get(event).event_type for event in events) == ["share.deleted", "spike.created"]
    assert all(Delivery.get(event).share_id == share.share_id for event in events)
    assert not list(Share.owner_index.query(owner))  # the share itself is gone


def test_an_accounts_usage_events_are_found_in_every_queue(store_backend):
    def enqueue(tx):
        for identifier, user in (("spike-a-1", "agent-1"), ("spike-b-1", "agent-1"), ("spike-c-1", "agent-1"),
                                 ("spike-d-1", "agent-2")):
            meter_events.add(tx, identifier, "spikes", user, None, NOW)
        held_charges.hold(tx, "share-sh_1", "shares", "agent-1", None, NOW, "2026-12", 5, None, 0)
    run(enqueue)
    pending = {item.identifier: item for item in OutboxItem.scan()}
    meter_events.sent(pending["spike-a-1"], "cus_1", NOW)  # a sent copy
    meter_events.bury(pending["spike-b-1"], "refused")  # refused, parked
    found = {OutboxItem.get(*key).identifier: key[0] for key in owned_items.usage_events("agent-1")}
    assert found == {"spike-a-1": meter_events.SENT_QUEUES[meter_events._shard("spike-a-1")],
                     "spike-b-1": meter_events.DEAD_QUEUE, "spike-c-1": meter_events.queue_of("spike-c-1"),
                     "share-sh_1": held_charges.HELD_QUEUE}
    assert [OutboxItem.get(*key).identifier for key in owned_items.usage_events("agent-2")] == ["spike-d-1"]


def test_a_stripe_events_pro_features_checkpoint_is_found_by_owner(store_backend, env):
    env(JOB_PAGE_SIZE="1", STRIPE_EVENT_SHARE_PAGES="1")
    owner = "cancelled-owner"
    User(owner, email="cancelled@example.com", tier="free", created_at="2026-01-01T00:00:00Z",
         subscription_event_at=NOW).save()
    for n in range(3):
        share_id = f"sh_cancelled-{n}"
        Share(f"share#{share_id}", share_id=share_id, owner_id=owner, created_at=f"2026-02-01T00:00:0{n}Z",
              slug=f"cancelled-{n}", status="active", password_hash="$argon2id$fake").save()
    quota_reset.change_pro_features(deps.settings(), owner, clock.now())
    assert list(owned_items.pro_feature_checkpoints(owner)) == [f"job#pro-features#{owner}@{NOW}-off"]
    # The ledger's other items (counters, markers, other jobs) carry no owner: not on the index.
    LedgerItem(ledger.job_key("quota-reset", "2026-12"), count=0).save()
    assert list(owned_items.pro_feature_checkpoints("someone-else")) == []
    assert LedgerItem.get(f"job#pro-features#{owner}@{NOW}-off").owner_id == owner


def test_the_markers_of_stripe_events_applied_to_an_account_are_found_by_owner(backend_client, store_backend, env):
    """A marker holds the user id, the event's type and time for 30 days: without its owner it
    was found only by the event's id, which nothing of the account keeps."""
    env(STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    payer, bystander = user_id_for("payer@example.com"), user_id_for("bystander@example.com")
    for user_id, customer in ((payer, "cus_payer"), (bystander, "cus_bystander")):
        User(user_id, email=f"{user_id}@example.com", tier="free", created_at="2026-01-01T00:00:00Z",
             stripe_customer_id=customer).save()
    applied = [event("customer.subscription.created", subscription("active", payer, customer="cus_payer"), NOW - 10),
               event("customer.subscription.deleted", subscription("canceled", payer, customer="cus_payer"), NOW)]
    stale = event("customer.subscription.updated", subscription("active", payer, customer="cus_payer"), NOW - 20)
    other = event("customer.subscription.created", subscription("active", bystander, customer="cus_bystander"), NOW)
    for evt in (*applied, stale, other):
        raw, headers = signed(evt)
        status, body, _ = call(backend_client, "POST", "/webhooks/stripe", raw=raw, headers=headers)
        assert status == 200, body
    assert sorted(owned_items.stripe_event_markers(payer)) == sorted(
        f"stripe-event#{evt['id']}" for evt in (*applied, stale))
    assert list(owned_items.stripe_event_markers(bystander)) == [f"stripe-event#{other['id']}"]
    assert LedgerItem.get(f"stripe-event#{stale['id']}").state == "stale"


@pytest.mark.parametrize("engine", ["moto", "dynamodb-local"])
def test_tables_from_before_get_their_owner_index_which_finds_the_items_already_stored(engine, request, monkeypatch):
    """The local server's saved tables: starting it adds each missing owner index (once: a second
    start changes nothing), and the engine indexes the items stored before by itself. DynamoDB
    Local runs on an engine of its own: in the suite's shared one, where dozens of tables have
    TTL on, version 3.3.0 leaves a new index CREATING for minutes (one stage's tables, as under
    `make dev`, do not)."""
    from app import app
    from chalicelib.store.setup import create_tables
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock_aws())
        endpoint = None
        if engine == "dynamodb-local":
            if request.config.getoption("--no-dynamodb-local"):
                pytest.skip("DynamoDB Local disabled (--no-dynamodb-local)")
            endpoint = stack.enter_context(dynamodb_local.running())
            monkeypatch.setenv("SPIKES_DYNAMODB_ENDPOINT_URL", endpoint)
            monkeypatch.setenv("SPIKES_TABLE_PREFIX", "upgraded-")
        stack.callback(deps.reset)
        _provision(endpoint)
        client = deps.dynamodb_client()
        for model, index in OWNER_INDEXED:
            _recreate_without_owner_index(client, model, index)
        with Client(app, stage_name="test") as http:
            token = sign_in(http, "before@example.com")
        create_tables(deps.settings(), client)
        create_tables(deps.settings(), client)  # idempotent
        for model, index in OWNER_INDEXED:
            for _ in range(60):  # DynamoDB Local builds a new index asynchronously
                indexes = {i["IndexName"]: i.get("IndexStatus", "ACTIVE")
                           for i in client.describe_table(TableName=model.Meta.table_name)["Table"]["GlobalSecondaryIndexes"]}
                if indexes.get(index) == "ACTIVE":
                    break
                time.sleep(0.5)
            assert indexes.get(index) == "ACTIVE", model.__name__
        assert list(owned_items.sessions(user_id_for("before@example.com"))) == [f"bearer#{token_hash(token)}"]


OWNER_INDEXED = ((AuthItem, "owner_index"), (Delivery, "owner_index"), (LedgerItem, "owner_index"),
                 (OutboxItem, "owner_index"), (User, "merged_index"))


def _recreate_without_owner_index(client, model, left_out: str) -> None:
    """The table as a version before the owner indexes created it (its other indexes kept)."""
    schema = client.describe_table(TableName=model.Meta.table_name)["Table"]
    kept = [index for index in schema.get("GlobalSecondaryIndexes", []) if index["IndexName"] != left_out]
    keys = {key["AttributeName"] for source in [schema, *kept] for key in source["KeySchema"]}
    model.delete_table()
    client.create_table(
        TableName=model.Meta.table_name, BillingMode="PAY_PER_REQUEST", KeySchema=schema["KeySchema"],
        AttributeDefinitions=[a for a in schema["AttributeDefinitions"] if a["AttributeName"] in keys],
        **({"GlobalSecondaryIndexes": [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                                       for index in kept]} if kept else {}))
    client.get_waiter("table_exists").wait(TableName=model.Meta.table_name)


def test_no_function_may_query_the_owner_indexes_until_one_reads_them():
    """Least privilege: the account's export and deletion (the roadmap) are the only readers, and
    no function runs them yet; the one that does gets Query on the index it reads."""
    from infra import policy
    for function, tables in policy.INDEX_QUERIES.items():
        for table in ("auth", "deliveries", "ledger", "outbox"):
            assert "owner_index" not in tables.get(table, ()), (function, table)
        assert "merged_index" not in tables.get("users", ()), function


def test_an_accounts_background_exports_and_their_files_are_found_by_owner(backend_client, store_backend):
    """export# items carried their starter only inside detail: no Query found them by owner."""
    token = sign_in(backend_client, "exporter@example.com")
    owner = user_id_for("exporter@example.com")
    share = make_share("exporter@example.com", "exported")
    assert call(backend_client, "POST", "/spikes", {"type": "page", "projectKey": share.share_id})[0] == 201
    status, created, _ = call(backend_client, "POST", "/auth/api-key", {"name": "ci", "scopes": "spikes:read"},
                              token=token)
    assert status == 201, created
    query = f"/exports?project={share.share_id}&format=jsonl"
    started = [call(backend_client, "POST", query, token=token)[1]["id"],
               call(backend_client, "POST", query, headers={"X-API-Key": created["api_key"]})[1]["id"]]
    assert call(backend_client, "POST", query)[0] == 202  # without an account: no one's
    assert call(backend_client, "POST", query, token=sign_in(backend_client, "other@example.com"))[0] == 202
    found = sorted(owned_items.background_exports(owner))
    assert found == sorted(f"export#{export_id}" for export_id in started)
    bucket = deps.settings().bucket_name
    for key in found:  # the S3 file, through its item
        assert deps.s3_client().head_object(Bucket=bucket, Key=LedgerItem.get(key).detail["key"])["ContentLength"] > 0
    assert list(owned_items.pro_feature_checkpoints(owner)) == []  # one index, each kind apart


def test_the_key_only_accounts_a_user_claimed_are_found_by_owner(backend_client, store_backend):
    """Only the claimer's keys pointed to a claimed account (``claimed_from``), and a key moved
    again, or deleted, would lose it with what stays under its id (its webhook and usage events,
    ``usage#``, ``rl#``); ``merged_into`` pointed the other way, with no index."""
    token = sign_in(backend_client, "claimer@example.com")
    claimer = user_id_for("claimer@example.com")
    accounts = []
    for name in ("first-agent", "second-agent", "unclaimed-agent"):
        status, created, _ = call(backend_client, "POST", "/auth/api-key", {"name": name})
        assert status == 201, created
        accounts.append(created["account_id"])
        if name != "unclaimed-agent":
            status, body, _ = call(backend_client, "POST", "/auth/link-key", {"api_key": created["api_key"]},
                                   token=token)
            assert status == 200, body
    assert sorted(owned_items.claimed_accounts(claimer)) == sorted(accounts[:2])
    assert list(owned_items.claimed_accounts(accounts[2])) == []
    assert list(owned_items.claimed_accounts(user_id_for("other@example.com"))) == []
