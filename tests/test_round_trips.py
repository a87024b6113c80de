"""The feedback path's DynamoDB round trips, counted where every table call goes (PynamoDB's
connection), and the cache that makes a warm post two round trips kept exact: a tier change,
a deleted share or a new slug made elsewhere (another Lambda, the webhook) is seen by the next
post (services/targets.py)."""
from __future__ import annotations

import time
from typing import Callable, List
from datetime import datetime, timezone

import pytest
from pynamodb.connection.base import Connection

from chalicelib import clock
from chalicelib.services import targets
from chalicelib.store import spike_counters
from chalicelib.store.models import Share, User
from tests.conftest import ADMIN_TOKEN, call
from tests.factories import make_share


def _post(client, calls, project_key, **fields):
    calls.clear()
    status, data, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": project_key, **fields})
    return status, data, dict(calls)


@pytest.mark.parametrize("by", ["id", "slug"])
def test_a_warm_post_to_a_share_is_two_round_trips(client, dynamodb_calls, by):
    share = make_share("owner@example.com", "site")
    key = share.share_id if by == "id" else "site"

    status, _, cold = _post(client, dynamodb_calls, key)
    assert status == 201
    # Cold, three round trips: the rate limit, one read, the transaction. By id the read is the
    # share with its period count (one BatchGetItem; the owner's tier from the share's hint);
    # by slug it is the slug's claim, whose hint describes the share and its owner. The
    # transaction checks either hint.
    read = {"GetItem": 1} if by == "slug" else {"BatchGetItem": 1}
    assert cold == {"UpdateItem": 1, **read, "TransactWriteItems": 1}

    for _ in range(3):
        status, _, warm = _post(client, dynamodb_calls, key)
        assert status == 201
        assert warm == {"UpdateItem": 1, "TransactWriteItems": 1}


def test_a_warm_post_to_a_plain_project_key_is_two_round_trips(client, dynamodb_calls):
    _post(client, dynamodb_calls, "my-project")
    status, _, warm = _post(client, dynamodb_calls, "my-project")
    assert status == 201 and warm == {"UpdateItem": 1, "TransactWriteItems": 1}


def test_a_warm_listing_is_one_query_and_the_limits_counter(client, dynamodb_calls):
    make_share("owner@example.com", "site")
    for _ in range(3):
        _post(client, dynamodb_calls, "site")
    call(client, "GET", "/spikes?project=site&limit=50")  # cold: slug claim, share, query
    dynamodb_calls.clear()
    status, data, _ = call(client, "GET", "/spikes?project=site&limit=50")
    assert status == 200 and len(data["data"]) == 3
    # Read without a credential, so counted first (docs/security.md, 257): one UpdateItem.
    assert dict(dynamodb_calls) == {"UpdateItem": 1, "Query": 1}


def _stored(project_key: str, count: int, fields_of: Callable[[int], dict]) -> List[str]:
    """``count`` spikes of a public project key written straight to the table, oldest first;
    ``fields_of(i)`` per spike. Their ids, newest first."""
    from chalicelib.store import spikes as spike_store
    from chalicelib.store.models import Spike
    partition, ids = spike_store.project_partition(project_key, None), []
    with Spike.batch_write() as batch:
        for i in range(count):
            public_id = f"s{i:05d}"
            batch.save(spike_store.new(spike_store.spike_id_for(partition, public_id), partition,
                                       f"2026-01-01T00:00:00.{i:06d}Z", public_id=public_id, type="page",
                                       project_key=project_key, **fields_of(i)))
            ids.append(public_id)
    return ids[::-1]


def test_a_filter_that_matches_little_reads_the_partition_in_large_reads(client, dynamodb_calls):
    """A filtered page read the index in reads of its own size until enough items matched: the
    dashboard's 20 open spikes among 30,000 resolved ones took 600 Queries (6.6 s on DynamoDB
    Local), the page's cost growing with everything stored instead of with the page."""
    ids = _stored("busy", 1201, lambda i: {"resolved": i != 0, "rating": "no" if i % 3 == 0 else "love"})
    dynamodb_calls.clear()
    status, data, _ = call(client, "GET", "/spikes?project=busy&resolved=false&limit=20")
    assert status == 200 and [spike["id"] for spike in data["data"]] == [ids[-1]], data
    assert dynamodb_calls["Query"] <= 3, dict(dynamodb_calls)  # 50, then 1,000, then the rest
    # A filter matching some: reads sized by its match rate, each matching item listed once.
    seen, cursor, queries = [], None, 0
    while True:
        dynamodb_calls.clear()
        status, data, _ = call(client, "GET", "/spikes?project=busy&rating=no&limit=150"
                               + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, data
        seen += [spike["id"] for spike in data["data"]]
        queries += dynamodb_calls["Query"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert seen == [public_id for public_id in ids if int(public_id[1:]) % 3 == 0]
    assert queries <= 8, queries  # 401 matches in pages of 150: 3 pages, 2 or 3 reads each


def test_a_full_page_reads_only_a_few_items_past_itself(client, query_limits):
    """A page reads one item past itself to know whether more follow. At the largest page (the
    CLI's and the MCP server's 1,000, each of the CLI push's pages, the dashboard's charts) the
    first read stopped at 1,000, and the second read was as large as the first: 1,000 items
    more to find one. Then it was a second Query of 2 items: a round trip per page (30 for the
    charts of a share of 30,000). Now the one read takes the page and the item past it."""
    ids = _stored("full", 1005, lambda i: {})
    read_sizes = query_limits
    read_sizes.clear()
    status, data, _ = call(client, "GET", "/spikes?project=full&limit=1000")
    assert status == 200 and [spike["id"] for spike in data["data"]] == ids[:1000] and data["next_cursor"]
    assert read_sizes == [1001], read_sizes
    status, data, _ = call(client, "GET", f"/spikes?project=full&limit=1000&cursor={data['next_cursor']}")
    assert status == 200 and [spike["id"] for spike in data["data"]] == ids[1000:] and data["next_cursor"] is None


def test_a_downgrade_made_elsewhere_applies_to_the_next_post(backend_client, env, dynamodb_calls):
    client = backend_client
    env(FREE_SPIKE_LIMIT="2")
    share = make_share("owner@example.com", "site", tier="pro")
    for _ in range(3):  # Pro: unlimited; the owner's tier is now cached
        assert _post(client, dynamodb_calls, "site")[0] == 201

    # The billing webhook, in another function: no cache of ours is told.
    User(share.owner_id).update(actions=[User.tier.set("free")])
    status, data, _ = _post(client, dynamodb_calls, "site")
    assert status == 429 and data["code"] == "SPIKE_LIMIT" and data["limit"] == 2
    assert len(call(client, "GET", "/spikes?project=site")[1]["data"]) == 3


def test_an_upgrade_made_elsewhere_lifts_the_limit_at_once(client, env, dynamodb_calls):
    env(FREE_SPIKE_LIMIT="2")
    share = make_share("owner@example.com", "site")
    for _ in range(2):
        assert _post(client, dynamodb_calls, "site")[0] == 201
    assert _post(client, dynamodb_calls, "site")[1]["code"] == "SPIKE_LIMIT"

    User(share.owner_id).update(actions=[User.tier.set("pro")])
    assert _post(client, dynamodb_calls, "site")[0] == 201


def test_a_lapsing_grace_period_is_seen_without_a_write(client, env):
    """Past due keeps Pro until grace_until: the cached deadline is compared with the clock."""
    env(FREE_SPIKE_LIMIT="1")
    share = make_share("owner@example.com", "site", tier="pro")
    now = time.time()
    User(share.owner_id).update(actions=[User.grace_until.set(int(now) + 60)])
    for _ in range(2):
        assert call(client, "POST", "/spikes", {"type": "page", "projectKey": "site"})[0] == 201
    later = datetime.fromtimestamp(now + 120, timezone.utc)
    clock.use(lambda: later)  # no write: only time moves, the cached owner stays cached
    try:
        status, data, _ = call(client, "POST", "/spikes", {"type": "page", "projectKey": "site"})
    finally:
        clock.use(None)
    assert status == 429 and data["code"] == "SPIKE_LIMIT"


def _listed(client, project_key):
    return [item["id"] for item in call(client, "GET", f"/spikes?project={project_key}")[1]["data"]]


def test_a_share_deleted_elsewhere_no_longer_takes_posts(backend_client, dynamodb_calls):
    client = backend_client
    share = make_share("owner@example.com", "site")
    assert _post(client, dynamodb_calls, share.share_id)[0] == 201
    Share(f"share#{share.share_id}").delete()  # by another function
    Share("slug#site").delete()

    status, data, _ = _post(client, dynamodb_calls, share.share_id)
    assert status == 201
    # Not to the deleted share's partition, nor listed by its id: kept for the admin (126).
    assert _listed(client, share.share_id) == []
    feed = call(client, "GET", f"/spikes?token={ADMIN_TOKEN}")[1]["data"]
    assert data["id"] in [item["id"] for item in feed]


def test_a_slug_claimed_after_posts_to_the_plain_key_takes_posts_a_few_seconds_later(client, dynamodb_calls,
                                                                                     monkeypatch):
    status, loose, _ = _post(client, dynamodb_calls, "launch")  # "launch" names no share: cached so
    assert status == 201
    make_share("owner@example.com", "launch")  # by another function

    later = time.monotonic() + targets.READ_TTL_SECONDS
    monkeypatch.setattr(targets.time, "monotonic", lambda: later)
    status, data, _ = _post(client, dynamodb_calls, "launch")
    assert status == 201
    assert _listed(client, "launch") == [data["id"]]  # the share's partition, without the loose one


def test_a_listing_trusts_its_cache_for_at_most_a_few_seconds(client, dynamodb_calls, monkeypatch):
    """Reads have no transaction to check against: a key that became a share's is listed from
    the share at the latest READ_TTL_SECONDS later."""
    status, loose, _ = _post(client, dynamodb_calls, "launch")
    assert _listed(client, "launch") == [loose["id"]]
    share = make_share("owner@example.com", "launch")
    call(client, "POST", "/spikes", {"type": "page", "projectKey": share.share_id})

    later = time.monotonic() + targets.READ_TTL_SECONDS
    monkeypatch.setattr(targets.time, "monotonic", lambda: later)
    assert loose["id"] not in _listed(client, "launch") and len(_listed(client, "launch")) == 1


def test_a_stale_tier_hint_on_the_share_costs_one_cold_post_and_is_corrected(backend_client, env, dynamodb_calls):
    """The share's hint of its owner's tier is only a hint: the transaction checks the owner.
    A tier changed elsewhere after the share was made (no hint updated) is seen by the first
    post, which corrects the hint, so the next cold function reads the share alone again."""
    client = backend_client
    env(FREE_SPIKE_LIMIT="2")
    share = make_share("owner@example.com", "site")  # hint: free
    User(share.owner_id).update(actions=[User.tier.set("pro")])  # the webhook, elsewhere
    statuses = [_post(client, dynamodb_calls, share.share_id) for _ in range(3)]
    assert [status for status, _, _ in statuses] == [201, 201, 201]  # Pro: over the free limit
    # The first: the hint's transaction refused (nothing written), then the owner read and the hint fixed.
    assert statuses[0][2]["TransactWriteItems"] == 2 and statuses[0][2]["GetItem"] == 1
    assert Share.get(f"share#{share.share_id}").owner_tier == "pro"

    targets.forget()  # a new function
    status, _, cold = _post(client, dynamodb_calls, share.share_id)
    assert status == 201 and cold == {"UpdateItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}

    User(share.owner_id).update(actions=[User.tier.set("free")])  # downgraded elsewhere: 4 stored
    targets.forget()
    status, data, _ = _post(client, dynamodb_calls, share.share_id)
    assert status == 429 and data["code"] == "SPIKE_LIMIT"
    assert len(call(client, "GET", f"/spikes?project={share.share_id}")[1]["data"]) == 4


def test_a_share_made_before_tier_hints_reads_its_owner_and_gets_one(client, dynamodb_calls):
    share = make_share("owner@example.com", "site", owner_tier=None)
    status, _, cold = _post(client, dynamodb_calls, share.share_id)
    # Rate limit, share and count, the owner, the hint written, the transaction.
    assert status == 201 and cold == {"UpdateItem": 2, "BatchGetItem": 1, "GetItem": 1, "TransactWriteItems": 1}
    assert Share.get(f"share#{share.share_id}").owner_tier == "free"
    targets.forget()
    assert _post(client, dynamodb_calls, share.share_id)[2] == {"UpdateItem": 1, "BatchGetItem": 1,
                                                                "TransactWriteItems": 1}


def _transaction_sizes(monkeypatch) -> List[int]:
    """How many items each TransactWriteItems carries, from here on."""
    sizes: List[int] = []
    original = Connection._make_api_call

    def recording(self, operation_name, operation_kwargs):
        if operation_name == "TransactWriteItems":
            sizes.append(len(operation_kwargs["TransactItems"]))
        return original(self, operation_name, operation_kwargs)
    monkeypatch.setattr(Connection, "_make_api_call", recording)
    return sizes


def test_a_cold_post_by_slug_to_a_free_share_reads_the_claim_alone(backend_client, env, dynamodb_calls, monkeypatch):
    """The slug's claim carries a hint of its share (owner, tier, name, webhook): a cold post
    by slug reads that one item. The share's count of posts made while unlimited this period is
    assumed 0 and checked by the transaction (8 shards), once: later posts trust what it saw."""
    client = backend_client
    env(FREE_SPIKE_LIMIT="2")
    make_share("owner@example.com", "site")
    sizes = _transaction_sizes(monkeypatch)
    first = _post(client, dynamodb_calls, "site")
    assert first[0] == 201 and first[2] == {"UpdateItem": 1, "GetItem": 1, "TransactWriteItems": 1}
    assert _post(client, dynamodb_calls, "site")[0] == 201
    assert sizes[0] == sizes[1] + spike_counters.COUNTER_SHARDS  # the assumed count checked by the first only
    status, data, _ = _post(client, dynamodb_calls, "site")
    assert status == 429 and data["code"] == "SPIKE_LIMIT"

    targets.forget()  # a new function: still one read, still exact
    status, data, cold = _post(client, dynamodb_calls, "site")
    assert status == 429 and cold == {"UpdateItem": 1, "GetItem": 1, "TransactWriteItems": 1}
    assert len(call(client, "GET", "/spikes?project=site")[1]["data"]) == 2


def test_posts_made_while_unlimited_count_against_a_cold_post_by_slug(backend_client, env, dynamodb_calls):
    """The owner was Pro earlier this period (2 posts, counted as unlimited) and is free now,
    and the claim's hint already says free: the count the cold post assumed (0) is refused by
    its transaction, the count is read, and the free limit of 3 takes one more post, not three."""
    client = backend_client
    env(FREE_SPIKE_LIMIT="3")
    share = make_share("owner@example.com", "site", tier="pro")
    for _ in range(2):
        assert _post(client, dynamodb_calls, share.share_id)[0] == 201
    User(share.owner_id).update(actions=[User.tier.set("free")])  # downgraded elsewhere
    claim = Share.get("slug#site")
    claim.update(actions=[Share.post_hint.set({**claim.post_hint, "owner_tier": "free"})])
    targets.forget()
    assert [_post(client, dynamodb_calls, "site")[0] for _ in range(3)] == [201, 429, 429]
    assert len(call(client, "GET", "/spikes?project=site")[1]["data"]) == 3


def test_a_stale_claim_hint_costs_one_cold_post_and_is_corrected(backend_client, env, dynamodb_calls):
    """A webhook set on the share in another function (the claim's hint still has none): the
    first cold post by slug is refused by its own transaction, redone on the share as read
    (its event goes to the new webhook), and the hint is rewritten for the next cold post."""
    from chalicelib.store.models import Delivery
    client = backend_client
    receiver_url = "https://hooks.example/spikes"  # queued only: nothing is sent in this test
    share = make_share("owner@example.com", "site", tier="pro")
    Share.get(f"share#{share.share_id}").update(actions=[Share.webhook_url.set(receiver_url),
                                                         Share.webhook_secret_nonce.set("n1")])
    status, _, first = _post(client, dynamodb_calls, "site")
    assert status == 201 and first["TransactWriteItems"] == 2 and first["BatchGetItem"] == 1
    assert [d.url for d in Delivery.share_index.query(share.share_id)] == [receiver_url]
    assert Share.get("slug#site").post_hint["webhook_url"] == receiver_url

    targets.forget()
    status, _, cold = _post(client, dynamodb_calls, "site")
    assert status == 201 and cold == {"UpdateItem": 1, "GetItem": 1, "TransactWriteItems": 1}
    assert len(list(Delivery.share_index.query(share.share_id))) == 2


def test_a_claim_made_before_hints_reads_the_share_and_gets_one(client, dynamodb_calls):
    make_share("owner@example.com", "site")
    Share("slug#site").update(actions=[Share.post_hint.remove()])
    status, _, cold = _post(client, dynamodb_calls, "site")
    # Rate limit, the claim, the share with its count, the claim's hint written, the transaction.
    assert status == 201 and cold == {"UpdateItem": 2, "GetItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}
    targets.forget()
    assert _post(client, dynamodb_calls, "site")[2] == {"UpdateItem": 1, "GetItem": 1, "TransactWriteItems": 1}
