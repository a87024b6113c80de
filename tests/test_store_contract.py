"""The same store-level rules on moto and on DynamoDB Local (Amazon's engine), so moto's
leniencies cannot hide a bug: conditional writes, transactions, GSIs, cursors, TTL setup."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from chalicelib import clock, deps
from chalicelib.errors import InvalidCursor
from chalicelib.limit_errors import SpikeLimit
from chalicelib.services import push_listing, ratelimit, spike_posts, spikes
from chalicelib.services.accounts import Accounts
from chalicelib.services.spike_posts import NewSpike
from chalicelib.services.spikes import Filters, Scope
from chalicelib.store import apikeys as key_store
from chalicelib.store import ledger, rows, share_work, spike_counters, spike_listings
from chalicelib.store import spikes as spike_store
from chalicelib.store.models import ApiKey, LedgerItem, OutboxItem, Spike, User
from tests.conftest import call, login_token_from_mail
from tests.factories import as_before_migrations, change_pro_features, make_share, make_user, queued

SECRET = "contract-secret"


def new_spike(project_key="proj", client_id=None, **fields) -> NewSpike:
    return NewSpike(type="page", project_key=project_key, client_id=client_id, **fields)


def test_record_is_retry_safe(store_backend):
    settings = deps.settings()
    first = spike_posts.record(new_spike(client_id="abc"), settings, "http://x")
    again = spike_posts.record(new_spike(client_id="abc", comments="changed"), settings, "http://x")
    assert first.created and not again.created and first.id == again.id == "abc"
    [stored] = Spike.id_index.query("abc")
    assert stored.comments == ""


def test_quota_is_enforced_by_the_transaction(store_backend, env):
    env(FREE_SPIKE_LIMIT="2")
    share = make_share("owner@example.com", "quota-site")
    settings = deps.settings()
    spike_posts.record(new_spike("quota-site", "a"), settings, "http://x")
    spike_posts.record(new_spike("quota-site", "b"), settings, "http://x")
    with pytest.raises(SpikeLimit):
        spike_posts.record(new_spike("quota-site", "c"), settings, "http://x")
    assert not spike_posts.record(new_spike("quota-site", "a"), settings, "http://x").created
    period = datetime.now(timezone.utc).strftime("%Y-%m")
    assert LedgerItem.get(f"quota#{share.share_id}#{period}").count == 2
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 2


def test_pagination_over_thousands_with_identical_timestamps(store_backend):
    """2,500 spikes received in the same millisecond: every page boundary falls inside a run of
    equal timestamps, and still no item is skipped or repeated."""
    created_at = "2026-05-01T12:00:00.000Z"
    with Spike.batch_write() as batch:
        for i in range(2500):
            spike_id = f"spk_{i:05d}"
            batch.save(Spike(spike_id, partition="key#bulk", sort_key=spike_store.sort_key_for(created_at, spike_id),
                             feed="all", type="page", project_key="bulk", created_at=created_at,
                             rating="love" if i % 3 == 0 else "no", resolved=False))
    seen, cursor, pages = [], None, 0
    while True:
        page = spikes.list_page(Scope("project", "key#bulk"), Filters(), 333, cursor, SECRET)
        seen += [item["id"] for item in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 8 and len(seen) == 2500 and len(set(seen)) == 2500
    assert seen == sorted(seen, reverse=True)
    # A filtered listing pages just as exactly.
    loved, cursor = [], None
    while True:
        page = spikes.list_page(Scope("project", "key#bulk"), Filters(rating="love"), 100, cursor, SECRET)
        loved += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(loved) == len(set(loved)) == 834


def _stored_in_one_millisecond(share, fields_of: Callable[[int], dict] = lambda i: {}) -> None:
    """300 spikes of ``share``, ``spk_00000`` to ``spk_00299``, every third open, all received in
    the same millisecond: page boundaries fall inside a run of equal times."""
    created_at = "2026-05-01T12:00:00.000Z"
    with Spike.batch_write() as batch:
        for i in range(300):
            spike_id = f"spk_{i:05d}"
            batch.save(spike_store.new(spike_id, share.share_id, created_at, public_id=spike_id, type="page",
                                       project_key=share.share_id, share_id=share.share_id, owner_id=share.owner_id,
                                       resolved=i % 3 != 0, **fields_of(i)))


def _listed(scope: Scope, filters: Filters, size: int, cursor=None) -> list:
    """The ids of every page of a listing, ``size`` a page, from ``cursor`` (the start) on."""
    seen = []
    while True:
        page = spikes.list_page(scope, filters, size, cursor, SECRET)
        seen += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


def test_open_feedback_pages_through_the_sparse_index_and_the_backfill_reopens_nothing(store_backend, monkeypatch):
    """``resolved=false`` of an owner reads ``open_owner_index`` (open spikes only, same order,
    the cursor read by either index); resolving and reopening move a spike off it and back
    (``SET open_sort_key = sort_key``); the upgrade's backfill gives the attribute to open
    spikes only, under a condition (store/open_spikes.py)."""
    from chalicelib.store import open_spikes
    share = make_share("owner@example.com", "open-site")
    _stored_in_one_millisecond(share)
    scope, open_ids = Scope("owner", share.owner_id), [f"spk_{i:05d}" for i in reversed(range(0, 300, 3))]
    assert open_spikes.serves("owner", Filters(resolved=False))
    assert _listed(scope, Filters(resolved=False), 7) == open_ids
    first = spikes.list_page(scope, Filters(resolved=False), 10, None, SECRET)
    as_before_migrations(monkeypatch, open_spikes.BACKFILL_MARKER)
    # A cursor of one path continues on the other (the backfill marked done between two pages).
    rest = spikes.list_page(scope, Filters(resolved=False), 1000, first.next_cursor, SECRET)
    assert [item["id"] for item in first.items + rest.items] == open_ids

    resolved_one = Spike.get("spk_00000")
    spike_store.set_resolved(resolved_one, "2026-05-02T00:00:00.000Z")
    reopened = Spike.get("spk_00001")
    spike_store.set_resolved(reopened, None)
    assert reopened.open_sort_key == reopened.sort_key and Spike.get("spk_00000").open_sort_key is None
    for spike in Spike.scan(Spike.open_sort_key.exists()):  # as kept from before the upgrade
        spike.update(actions=[open_spikes.closed()])
    spike_store.set_resolved(Spike.get("spk_00003"), "2026-05-02T00:00:00.000Z")
    now_open = sorted({*open_ids, "spk_00001"} - {"spk_00000", "spk_00003"}, reverse=True)
    assert _listed(scope, Filters(resolved=False), 50) == now_open  # the old path, before the backfill

    assert open_spikes.backfill() == len(now_open)
    assert open_spikes.backfill() == 0
    for _ in range(60):  # a table created for this test: its indexes are ACTIVE at once; a wait in case
        if open_spikes.backfilled():
            break
        time.sleep(0.5)
        open_spikes.backfill()
    assert open_spikes.serves("owner", Filters(resolved=False))
    assert _listed(scope, Filters(resolved=False), 7) == now_open
    resolved_ids = sorted(set(f"spk_{i:05d}" for i in range(300)) - set(now_open), reverse=True)
    assert _listed(scope, Filters(resolved=True), 1000) == resolved_ids
    stored = {spike.spike_id: spike for spike in Spike.scan()}
    assert all((spike.open_sort_key is not None) == (not spike.resolved) for spike in stored.values())


def test_a_query_of_the_open_index_refused_while_it_is_missing_or_built_is_told_apart(store_backend, monkeypatch):
    """A stack taken back to a version without ``open_owner_index`` and forward again has it
    built anew while the marker says done: the owner's open feedback is then read from the
    partition (tests/test_open_spikes.py), on DynamoDB's refusal of a Query of the index, in
    each engine's words (here asked of a table that does not have it), and on no other."""
    from pynamodb.exceptions import QueryError

    from chalicelib.store import open_spikes
    monkeypatch.setattr(open_spikes, "_refused_until", 0.0)

    def refusal(**query) -> QueryError:
        try:
            deps.dynamodb_client().query(TableName=LedgerItem.Meta.table_name, KeyConditionExpression="pk = :p",
                                         ExpressionAttributeValues={":p": {"S": "x"}}, **query)
        except ClientError as exc:
            return QueryError("Failed to query items", cause=exc)
        raise AssertionError("the Query was answered")
    assert open_spikes._refused(refusal(IndexName="open_owner_index"))
    monkeypatch.setattr(open_spikes, "_refused_until", 0.0)
    assert not open_spikes._refused(QueryError("Failed", cause=ClientError({"Error": {
        "Code": "ValidationException", "Message": "One or more parameter values were invalid"}}, "Query")))
    building = QueryError("Failed", cause=ClientError({"Error": {"Code": "ValidationException", "Message":
                                                                 "Cannot read from backfilling global secondary "
                                                                 "index: open_owner_index"}}, "Query"))
    assert open_spikes._refused(building) and not open_spikes.serves("owner", Filters(resolved=False))


def test_an_unpaged_listing_is_read_page_by_page_and_stops_short_of_its_weight(store_backend):
    """The CLI's push reads one bare array of up to 10,000 spikes: read a page at a time (a page
    read whole and only then measured would hold 10,000 comments of 10,000 characters at
    once), items in order and once each, stopping before the answer would pass its weight."""
    from chalicelib import lambda_answer
    for i in range(10):
        spike_posts.record(new_spike("unpaged", f"u{i}", comments="\u65e5" * 300 * (i + 1)), deps.settings(), "http://x")
    scope, every = Scope("project", "key#unpaged"), [f"u{i}" for i in reversed(range(10))]
    whole = push_listing.list_unpaged(scope, Filters(), 100, None, SECRET, 10 ** 9, read_size=3)
    assert [item["id"] for item in whole.items] == every and whole.next_cursor is None
    assert json.loads(whole.items_json) == whole.items
    weights = [lambda_answer.weight(spikes.items_json([item])) - 1 for item in whole.items]  # less a bracket
    for fitting in (1, 3, 4, 6, 7):  # ends inside a read page, at its end, before or after a page's first item
        max_bytes = 1 + sum(weights[:fitting]) + 1  # brackets, items less their commas, 1 short of the next
        part = push_listing.list_unpaged(scope, Filters(), 100, None, SECRET, max_bytes, read_size=3)
        assert [item["id"] for item in part.items] == every[:fitting], fitting
        assert lambda_answer.weight(part.items_json) <= max_bytes
    assert [i["id"] for i in push_listing.list_unpaged(scope, Filters(rating="no"), 100, None, SECRET, 10 ** 9).items] == []


def test_cursor_cannot_cross_partitions(store_backend):
    for i in range(3):
        spike_posts.record(new_spike("one", f"x{i}"), deps.settings(), "http://x")
    cursor = spikes.list_page(Scope("project", "key#one"), Filters(), 1, None, SECRET).next_cursor
    with pytest.raises(InvalidCursor):
        spikes.list_page(Scope("project", "key#two"), Filters(), 1, cursor, SECRET)
    with pytest.raises(InvalidCursor):
        spikes.list_page(Scope("project", "key#one"), Filters(), 1, cursor, "another-secret")


def test_rate_limit_counts_atomically(store_backend):
    decisions = [ratelimit.check("contract", "subject", 5, 60, now=1_000_000.0 + i) for i in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert decisions[4].remaining == 0 and decisions[5].retry_after >= 1


def test_a_hit_may_count_several_at_once(store_backend):
    """A share listing charges what it read once read (docs/security.md 338): one ADD of that
    many, on either engine, weighs as that many single hits."""
    start = 60 * 116_700.0 + 5
    assert ratelimit.check("many", "s", 5, 60, now=start).remaining == 4
    assert ratelimit.check("many", "s", 5, 60, now=start + 1, hits=3).remaining == 1
    assert not ratelimit.check("many", "s", 5, 60, now=start + 2, hits=2).allowed


def test_asking_whether_a_hit_would_be_refused_counts_none(store_backend):
    """A share's password an export keeps is refused while no try is left, without counting one
    while some are (services/share_access.py, docs/security.md 276): the counter is read on either
    engine as ``check`` counts it, and left as it was."""
    start = 60 * 116_670.0 + 10
    assert not ratelimit.would_refuse("peek", "s", 5, 60, now=start)  # never counted
    for i in range(4):
        assert ratelimit.check("peek", "s", 5, 60, now=start + i).allowed
    assert [ratelimit.would_refuse("peek", "s", 5, 60, now=start + 5) for _ in range(3)] == [False] * 3
    assert ratelimit.check("peek", "s", 5, 60, now=start + 6).allowed  # the fifth: the asking counted none
    assert ratelimit.would_refuse("peek", "s", 5, 60, now=start + 7)
    assert not ratelimit.would_refuse("peek", "s", 5, 60, now=start + 60 * 2)  # two windows later


def test_rate_limit_slides_across_windows(store_backend):
    for i in range(5):
        assert ratelimit.check("slide", "s", 5, 60, now=6_000_000.0 + 50 + i * 0.1).allowed
    # 30 s into the next window the previous window still weighs half: 5 * 0.5 = 2.5 used.
    allowed = [ratelimit.check("slide", "s", 5, 60, now=6_000_060.0 + 30).allowed for _ in range(4)]
    assert allowed == [True, True, False, False]


@pytest.mark.parametrize("first_hits_at", [0.0, 50.0])
def test_a_client_that_waits_retry_after_is_let_through(store_backend, first_hits_at):
    # Limit 5 a minute. A burst of 6 (the last refused) at the start or end of a window; the
    # client then waits exactly the Retry-After it was given, as the contract tells it to.
    start = 60 * 116_667.0 + first_hits_at  # a window starts at 60 * n
    decisions = [ratelimit.check("obey", f"s{first_hits_at}", 5, 60, now=start + i * 0.01) for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    retry_at = start + 0.05 + decisions[-1].retry_after
    later = ratelimit.check("obey", f"s{first_hits_at}", 5, 60, now=retry_at)
    assert later.allowed, f"refused again after waiting the {decisions[-1].retry_after} s it was told"


@pytest.mark.parametrize("first_hits_at", [0.0, 50.0])
def test_a_client_that_waits_for_x_ratelimit_reset_is_let_through(store_backend, first_hits_at):
    """With nothing left, X-RateLimit-Reset named the end of the current window, but the sliding
    window still weighs that window's hits after it: a client waiting for Reset (as many do when
    Remaining is 0) was refused, and the refusal counted, pushing it further back. Reset now says
    when a request is let through, as Retry-After does: after the last allowed hit and after a
    refused one."""
    start = 60 * 116_668.0 + first_hits_at
    last_allowed = [ratelimit.check("reset-ok", f"a{first_hits_at}", 5, 60, now=start + i * 0.01) for i in range(5)][-1]
    assert last_allowed.allowed and last_allowed.remaining == 0
    assert ratelimit.check("reset-ok", f"a{first_hits_at}", 5, 60, now=last_allowed.reset_at).allowed
    refused = [ratelimit.check("reset-no", f"r{first_hits_at}", 5, 60, now=start + i * 0.01) for i in range(6)][-1]
    assert not refused.allowed and refused.reset_at >= start + 0.05 + refused.retry_after
    assert ratelimit.check("reset-no", f"r{first_hits_at}", 5, 60, now=refused.reset_at).allowed


def test_retry_after_counts_the_refused_hit_and_the_retry(store_backend):
    # 5 hits at the end of one window; 10 s into the next the previous window still weighs
    # 5 * 50/60 > 4, so a hit is refused. The refused hit counts, and so will the retry: they
    # fit once the previous window weighs 3 (24 s in), not 4 (12 s in).
    window = 60 * 133_334.0
    for i in range(5):
        assert ratelimit.check("tight", "s", 5, 60, now=window - 5 + i * 0.1).allowed
    refused = ratelimit.check("tight", "s", 5, 60, now=window + 10)
    assert not refused.allowed
    assert refused.retry_after == 14
    assert ratelimit.check("tight", "s", 5, 60, now=window + 10 + refused.retry_after).allowed


def test_login_tokens_are_single_use_under_a_race(backend_client, store_backend):
    if store_backend == "moto":
        pytest.skip("moto's in-memory backend is not thread-safe; DynamoDB Local is the real check")
    call(backend_client, "POST", "/auth/login", {"email": "race@example.com"})
    token = login_token_from_mail("race@example.com")
    accounts = Accounts(deps.settings(), deps.mailer(), "http://x")
    results, errors = [], []

    def verify():
        try:
            results.append(accounts.verify(token).token)
        except Exception as exc:  # noqa: BLE001
            errors.append(getattr(exc, "code", repr(exc)))
    threads = [threading.Thread(target=verify) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 1 and set(errors) <= {"TOKEN_USED"} and len(errors) == 7


def test_concurrent_posts_never_exceed_the_quota(store_backend, env):
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    env(FREE_SPIKE_LIMIT="10")
    share = make_share("owner@example.com", "hot")
    settings = deps.settings()
    outcomes = []

    def post(i):
        try:
            spike_posts.record(new_spike("hot", f"c{i}"), settings, "http://x")
            outcomes.append("ok")
        except SpikeLimit:
            outcomes.append("limit")
    threads = [threading.Thread(target=post, args=(i,)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("ok") == 10 and outcomes.count("limit") == 50
    assert len(list(Spike.partition_index.query(share.share_id))) == 10


def test_the_partition_keeps_its_stored_name(store_backend):
    """``Spike.partition`` is stored as ``project`` (and indexed by ``project_index``), the
    names items were written with before the code renamed it: no data migration."""
    recorded = spike_posts.record(new_spike("named", client_id="n1"), deps.settings(), "http://x")
    [spike] = Spike.id_index.query(recorded.id)
    item = deps.dynamodb_client().get_item(TableName=Spike.Meta.table_name, Key={"spike_id": {"S": spike.spike_id}})
    assert item["Item"]["project"] == {"S": "key#named"} and "partition" not in item["Item"]
    listed = spikes.list_page(spikes.project_scope("named", None), Filters(), 10, None, SECRET)
    assert [row["id"] for row in listed.items] == ["n1"]
    read, _ = rows.query_index(Spike, Spike.partition_index, "key#named", limit=10)  # by stored name, to the model's
    assert [(row.partition, row.public_id) for row in read] == [("key#named", "n1")]


def _tombstones(owner_id: str, *share_ids: str) -> None:
    """Shares of ``owner_id`` whose deletion started, as the tombstone's transaction leaves them."""
    from chalicelib.store.models import Share
    from chalicelib.store.shares import DELETING, share_pk
    with Share.batch_write() as batch:
        for share_id in share_ids:
            batch.save(Share(share_pk(share_id), share_id=share_id, owner_id=owner_id, status=DELETING,
                             created_at="2026-05-01T00:00:00.000Z"))
    for share_id in share_ids:
        share_work.DELETIONS.record(share_id, 1_800_000_000)


def test_an_owners_listing_leaves_out_the_partitions_of_shares_being_deleted(store_backend):
    """The owner's listing filters out the partitions of their shares being deleted, found in
    ``owner_status_index`` (``NOT project IN (...)``, in IN-sized chunks), as Amazon's engine
    reads the index and the expression; other owners' deletions are not read."""
    with Spike.batch_write() as batch:
        for number, partition in enumerate(["sh_gone", "sh_kept", "sh_gone", "key#own"]):
            spike_id, created_at = f"spk_{number}", f"2026-05-01T12:00:0{number}.000Z"
            batch.save(Spike(spike_id, partition=partition, owner_id="u1", feed="all", type="page", project_key="x",
                             created_at=created_at, sort_key=spike_store.sort_key_for(created_at, spike_id)))
    _tombstones("u2", "sh_kept")  # another owner's share of that id (ids are unique: only to test)
    for pending in (["sh_gone"], ["sh_gone"] + [f"sh_other{n}" for n in range(150)]):
        _tombstones("u1", *pending)
        scope = Scope("owner", "u1")
        filters = spikes.hiding_deletions(scope, Filters())
        assert sorted(filters.hidden_partitions) == sorted(pending)
        assert [row.spike_id for row in spike_listings.page(scope, filters, 10, None, SECRET)[0]] == ["spk_3", "spk_1"]
    assert len(spike_listings.page(scope, Filters(), 10, None, SECRET)[0]) == 4
    assert spikes.hiding_deletions(Scope("owner", "u3"), Filters()).hidden_partitions == ()


def test_an_unpaged_owners_listing_reads_the_pending_deletions_once(store_backend, monkeypatch):
    """The CLI's push reads up to 10,000 spikes as pages of 1,000: the pending deletions it
    leaves out are read once for the answer, not once a page."""
    from chalicelib.store import shares as share_store
    with Spike.batch_write() as batch:
        for number, partition in enumerate(["sh_gone", "key#own", "key#own", "sh_gone", "key#own"]):
            spike_id, created_at = f"spk_{number}", f"2026-05-01T12:00:0{number}.000Z"
            batch.save(Spike(spike_id, partition=partition, owner_id="u1", feed="all", type="page", project_key="x",
                             created_at=created_at, sort_key=spike_store.sort_key_for(created_at, spike_id)))
    _tombstones("u1", "sh_gone")
    reads = []
    deleting_of = share_store.deleting_of
    monkeypatch.setattr(share_store, "deleting_of", lambda owner_id, limit: reads.append(owner_id) or
                        deleting_of(owner_id, limit))
    listed = push_listing.list_unpaged(Scope("owner", "u1"), Filters(), 100, None, SECRET, 10 ** 9, read_size=1)
    assert [item["id"] for item in listed.items] == ["spk_4", "spk_2", "spk_1"]
    assert reads == ["u1"]


def _post_concurrently(project_key: str, count: int, threads: int = 8, prefix: str = "c") -> list:
    """``count`` posts from ``threads`` threads at once; their outcomes."""
    settings = deps.settings()
    outcomes, lock = [], threading.Lock()
    ids = iter(range(count))

    def poster():
        while True:
            with lock:
                i = next(ids, None)
            if i is None:
                return
            try:
                spike_posts.record(new_spike(project_key, f"{prefix}{i}"), settings, "http://x")
                outcome = "ok"
            except SpikeLimit:
                outcome = "limit"
            with lock:
                outcomes.append(outcome)
    workers = [threading.Thread(target=poster) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return outcomes


def test_a_hot_unlimited_share_counts_exactly_in_shards(store_backend):
    """8 posters on one Pro share: the counters nobody conditions on are sharded (no item all
    posts update), and the sums are exact: total = usage = stored = accepted."""
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    share = make_share("owner@example.com", "hot-pro", tier="pro")
    outcomes = _post_concurrently("hot-pro", 80)
    assert outcomes.count("ok") == 80
    stored = list(Spike.partition_index.query(share.share_id))
    assert len(stored) == 80
    period = clock.current_period()
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 80
    assert spike_counters.unlimited_count(share.share_id, period) == 80
    assert ledger.count(ledger.user_usage_key(share.owner_id, period)) == 80
    assert ledger.count(spike_counters.share_quota_key(share.share_id, period)) == 0  # the limited counter untouched
    shards_used = {spike_counters.shard_of(spike.spike_id) for spike in stored}
    assert len(shards_used) > 1
    for spike in stored[:5]:
        spike_store.delete(spike)
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 75


def test_a_downgrade_counts_this_periods_unlimited_posts_against_the_limit(store_backend, env):
    """Posts received while Pro (counted in shards) count against the free limit that applies
    after a downgrade made elsewhere, exactly, also with posts racing for the rest."""
    if store_backend == "moto":
        pytest.skip("moto's in-memory transactions are not isolated across threads; DynamoDB Local is")
    env(FREE_SPIKE_LIMIT="20")
    share = make_share("owner@example.com", "was-pro", tier="pro")
    assert _post_concurrently("was-pro", 12).count("ok") == 12
    User(share.owner_id).update(actions=[User.tier.set("free")])  # the billing webhook, elsewhere
    outcomes = _post_concurrently("was-pro", 30, prefix="after")
    assert outcomes.count("ok") == 8 and outcomes.count("limit") == 22
    assert len(list(Spike.partition_index.query(share.share_id))) == 20
    period = clock.current_period()
    assert ledger.count(spike_counters.share_quota_key(share.share_id, period)) == 8
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 20


def test_a_spike_counted_before_the_total_was_sharded_is_counted_out_of_the_old_total(store_backend):
    share = make_share("owner@example.com", "legacy")
    spike_posts.record(new_spike("legacy", "old"), deps.settings(), "http://x")
    [spike] = Spike.id_index.query("old")
    # As stored before shards: the total in one item.
    LedgerItem(spike_counters.share_total_shard_key(share.share_id, spike_counters.shard_of(spike.spike_id))).delete()
    LedgerItem(spike_counters.share_total_key(share.share_id), count=1).save()
    spike_store.delete(spike)
    assert spike_counters.share_spike_counts([share.share_id])[share.share_id] == 0
    assert ledger.count(spike_counters.share_total_key(share.share_id)) == 0


def test_a_projects_open_feedback_pages_through_its_sparse_index_as_the_filter_does(store_backend, monkeypatch):
    """``resolved=false`` of a project reads ``open_project_index`` once the backfill is done and
    the index is ACTIVE (``PROJECT_MARKER``), with the same pages as filtering ``project_index``;
    a cursor of either path continues on the other, and the reviewer filter applies to both."""
    from chalicelib.store import open_spikes
    share = make_share("owner@example.com", "open-project")
    _stored_in_one_millisecond(share, lambda i: {"reviewer_id": "rev-a" if i % 2 else "anon"})
    scope = Scope("project", share.share_id)
    queried = []
    original = rows.query_index

    def recording(model, index, *args, **kwargs):
        queried.append(index.Meta.index_name)
        return original(model, index, *args, **kwargs)
    monkeypatch.setattr(rows, "query_index", recording)
    assert open_spikes.serves("project", Filters(resolved=False))
    by_index = {reviewer: _listed(scope, Filters(resolved=False, reviewer=reviewer), 7)
                for reviewer in (None, "rev-a")}
    assert set(queried) == {"open_project_index"}
    first = spikes.list_page(scope, Filters(resolved=False), 10, None, SECRET)
    as_before_migrations(monkeypatch, open_spikes.PROJECT_MARKER)
    queried.clear()
    by_filter = {reviewer: _listed(scope, Filters(resolved=False, reviewer=reviewer), 7)
                 for reviewer in (None, "rev-a")}
    assert set(queried) == {"project_index"}
    assert by_index == by_filter and len(by_index[None]) == 100 and len(by_index["rev-a"]) == 50
    # A cursor of one path continues on the other (the marker set between two pages), both ways.
    rest = _listed(scope, Filters(resolved=False), 1000, first.next_cursor)
    assert [item["id"] for item in first.items] + rest == by_index[None]
    first = spikes.list_page(scope, Filters(resolved=False), 10, None, SECRET)
    LedgerItem(open_spikes.PROJECT_MARKER, state="done").save()
    rest = _listed(scope, Filters(resolved=False), 1000, first.next_cursor)
    assert queried[-1] == "open_project_index"
    assert [item["id"] for item in first.items] + rest == by_index[None]


def test_a_table_from_an_older_version_gets_the_indexes_and_attributes_added_since(aws, monkeypatch):
    """The local server keeps its data across upgrades: starting it adds a missing index and
    gives stored items what the new one reads (store/spike_ids.py). On moto only: in the
    suite's shared DynamoDB Local a new index did not reach ACTIVE in time (it does alone)."""
    from chalicelib.store import open_spikes, spike_ids
    from chalicelib.store.setup import create_tables
    client = deps.dynamodb_client()
    table = Spike.Meta.table_name
    schema = client.describe_table(TableName=table)["Table"]
    Spike.delete_table()
    added = ("id_owner_index", "open_owner_index", "open_project_index")
    client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", KeySchema=schema["KeySchema"],
        AttributeDefinitions=[a for a in schema["AttributeDefinitions"]
                              if a["AttributeName"] not in ("owner_project", "open_sort_key")],
        GlobalSecondaryIndexes=[{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                                for index in schema["GlobalSecondaryIndexes"] if index["IndexName"] not in added])
    client.get_waiter("table_exists").wait(TableName=table)
    before = spike_posts.record(new_spike(client_id="before-upgrade"), deps.settings(), "http://x")
    before_key = spike_store.spike_id_for("key#proj", before.id)
    Spike(before_key).update(actions=[Spike.owner_project.remove(), open_spikes.closed()])
    as_before_migrations(monkeypatch, spike_ids.BACKFILL_MARKER, open_spikes.BACKFILL_MARKER,
                         open_spikes.PROJECT_MARKER)
    create_tables(deps.settings(), client)
    indexes = {i["IndexName"]: i for i in client.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"project_index", "owner_index", "open_owner_index", "open_project_index", "feed_index",
                            "id_index", "id_owner_index"}
    for _ in range(60):  # DynamoDB Local builds a new index asynchronously
        status = client.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
        if all(i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in status):
            break
        time.sleep(0.5)
    assert spike_ids.backfilled() and open_spikes.backfilled() and open_spikes.project_ready()
    assert Spike.get(before_key).open_sort_key == Spike.get(before_key).sort_key
    recorded = spike_posts.record(new_spike(client_id="after-upgrade"), deps.settings(), "http://x")
    for public_id in (before.id, recorded.id):
        assert [s.owner_project for s in Spike.id_owner_index.query(public_id)] == ["#key#proj"]


def test_a_table_kept_without_expiry_gets_it_on_start(store_backend):
    """The outbox had no TTL before sent meter events were kept 35 days in it: the local
    server's saved table gets it when the server starts, not only a newly created one."""
    from chalicelib.store.setup import create_tables
    client = deps.dynamodb_client()
    table = OutboxItem.Meta.table_name
    OutboxItem.delete_table()
    OutboxItem.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    assert client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    create_tables(deps.settings(), client)
    description = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert description["TimeToLiveStatus"] in ("ENABLED", "ENABLING") and description["AttributeName"] == "expires_at"
    create_tables(deps.settings(), client)  # a second start finds it on and changes nothing


def test_a_page_stops_before_its_byte_budget_and_continues_after(store_backend):
    """Lambda answers at most 6 MB: a listing ends early, and its cursor loses nothing."""
    settings = deps.settings()
    for n in range(5):
        spike_posts.record(new_spike(client_id=f"big-{n}", comments="x" * 1000), settings, "http://x")
    scope = spikes.project_scope("proj", None)
    seen = []
    cursor = None
    for _ in range(5):
        page = spikes.list_page(scope, Filters(), 100, cursor, SECRET, max_bytes=2500)
        assert 1 <= len(page.items) <= 2
        # Measured as sent: the serialized items are the bytes of the answer's array.
        assert len(page.items_json.encode()) <= 2500 and json.loads(page.items_json) == page.items
        seen += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"big-{n}" for n in range(5)]


def test_a_page_over_its_byte_budget_is_cut_from_the_one_read(store_backend, dynamodb_calls):
    """A page over its byte budget was read a second time to be measured item by item: twice
    the reads of every page of large feedback. It is cut from what was read, its cursor at the
    last item kept, and the page after it starts with the first item left out."""
    settings = deps.settings()
    for n in range(5):
        spike_posts.record(new_spike(client_id=f"heavy-{n}", comments="x" * 1000), settings, "http://x")
    scope = spikes.project_scope("proj", None)
    dynamodb_calls.clear()
    whole = spikes.list_page(scope, Filters(), 100, None, SECRET)
    light_reads = dynamodb_calls["Query"]
    dynamodb_calls.clear()
    cut = spikes.list_page(scope, Filters(), 100, None, SECRET, max_bytes=2500)
    assert dynamodb_calls["Query"] == light_reads == 1, dict(dynamodb_calls)
    assert 1 <= len(cut.items) < len(whole.items) and cut.items == whole.items[:len(cut.items)]
    after = spikes.list_page(scope, Filters(), 100, cut.next_cursor, SECRET)
    assert after.items == whole.items[len(cut.items):]


def test_a_page_is_measured_as_lambdas_answer_carries_it(store_backend):
    """Lambda's 6 MB counts the proxy answer as its Python 3.11 runtime writes it: JSON, the
    body one string in it, quotes and backslashes escaped again. Feedback full of quotes
    weighs twice its length there: measured by its length, a page under the budget could pass
    Lambda's limit, and the listing failed (502) for good."""
    from chalicelib import lambda_answer
    settings = deps.settings()
    for n in range(5):
        spike_posts.record(new_spike(client_id=f"quoted-{n}", comments='"' * 500), settings, "http://x")
    scope = spikes.project_scope("proj", None)
    seen, cursor = [], None
    for _ in range(5):
        page = spikes.list_page(scope, Filters(), 100, cursor, SECRET, max_bytes=2500)
        assert 1 <= len(page.items) <= 2
        # As the runtime writes the answer (its marshaller: json.dumps, ASCII only).
        assert len(json.dumps({"body": page.items_json})) - len('{"body": ""}') <= 2500
        assert lambda_answer.weight(page.items_json) > len(page.items_json) * 1.5  # quotes weigh double
        seen += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"quoted-{n}" for n in range(5)]


def test_a_listed_item_reads_as_the_stored_model_does(store_backend):
    """Listings take items from the Query's body as sent (store/rows.py), not through botocore
    and PynamoDB: every attribute type comes out as it does from the model."""
    settings = deps.settings()
    full = new_spike(client_id="full", comments='quote " and \\ back\nslash "B": é 日本', rating="meh",
                     reviewer={"id": "r1", "name": "Ann", "email": "ann@example.com"}, selector="#buy",
                     xpath="/html/body", element_text="Buy", bounding_box={"x": 1, "y": 2, "width": 3, "height": 4},
                     viewport={"width": 1280, "height": 720}, page="Home", url="https://example.com/")
    spike_posts.record(full, settings, "http://x")
    spike_posts.record(new_spike(client_id="bare"), settings, "http://x")
    page = spikes.list_page(spikes.project_scope("proj", None), Filters(), 10, None, SECRET)
    listed = {item["id"]: item for item in page.items}
    for stored in Spike.id_index.query("full"), Spike.id_index.query("bare"):
        [model] = stored
        assert listed[model.public_id] == spikes.to_client(model)
    assert listed["full"]["boundingBox"] == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert listed["bare"]["reviewer"] == {"id": "anon", "name": "Anonymous"} and listed["bare"]["resolved"] is False


def test_an_unfinished_upload_is_tombstoned_only_while_pending_and_empty(store_backend):
    """The share_deletions job's expiry of a presigned upload never completed races the
    owner's completion and any feedback posted to the share: exactly one of them wins."""
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    pending = make_share("owner@example.com", "pending-one", status=share_store.PENDING)
    completed = make_share("owner@example.com", "completed-one", status=share_store.PENDING)
    with_feedback = make_share("owner@example.com", "with-feedback", status=share_store.PENDING)
    old_counter = make_share("owner@example.com", "old-counter", status=share_store.PENDING)
    share_store.activate(share_store.get_by_id(completed.share_id))
    LedgerItem(spike_counters.share_total_shard_key(with_feedback.share_id, 5), count=1).save()
    LedgerItem(spike_counters.share_total_key(old_counter.share_id), count=2).save()  # counted before shards
    LedgerItem(spike_counters.share_total_shard_key(pending.share_id, 3), count=0).save()  # a spike came and went
    assert User.get(pending.owner_id).active_shares == 4

    share_tombstones.tombstone_unfinished(pending)
    with pytest.raises(share_tombstones.NoLongerPending):
        share_tombstones.tombstone_unfinished(completed)
    for held in (with_feedback, old_counter):
        with pytest.raises(share_tombstones.HoldsFeedback):
            share_tombstones.tombstone_unfinished(held)
        assert share_store.get_by_id(held.share_id, consistent=True).status == share_store.PENDING
    assert share_store.get_by_id(pending.share_id, consistent=True).status == share_store.DELETING
    assert share_store.get_by_id(completed.share_id, consistent=True).status == share_store.ACTIVE
    assert User.get(pending.owner_id).active_shares == 3
    assert queued(share_work.DELETIONS) == [pending.share_id]
    # A completion after the tombstone is refused: the share is being deleted.
    assert share_store.activate(share_store.get_by_id(pending.share_id)).status == share_store.DELETING


def test_a_retired_slug_is_claimed_again_only_by_its_owner(store_backend):
    """A deleted share's slug claim is retired, kept for the owner (store/share_tombstones.remove); the
    conditions that keep it are checked by the engine, not only by moto."""
    from chalicelib.services.share_creation import new_share_id
    from chalicelib.store import post_reads, reserved_slugs
    from chalicelib.store import share_tombstones
    from chalicelib.store import shares as share_store
    old = make_share("owner@example.com", "kept")
    stranger = make_share("stranger@example.com", "theirs")
    share_tombstones.tombstone(old, old.owner_id)
    share_tombstones.remove(old)
    assert share_store.resolve("kept") is None and post_reads.slug_claim("kept").share_id is None
    with pytest.raises(share_store.SlugTaken):
        share_store.insert(share_store.new(new_share_id(), slug="kept", owner_id=stranger.owner_id, name="x"),
                           stranger.owner_id, under_limit=None)
    again = make_share("owner@example.com", "kept")
    assert share_store.resolve("kept").share_id == again.share_id
    share_tombstones.remove(old)  # a late retry of the first deletion leaves the new claim alone
    assert share_store.resolve("kept").share_id == again.share_id

    # The owner's retired slugs are found by owner (no scan) and move with a claimed account.
    gone = make_share("owner@example.com", "gone")
    share_tombstones.remove(gone)
    assert list(reserved_slugs.reserved_for(old.owner_id)) == ["gone"]
    assert reserved_slugs.move_reservation("gone", old.owner_id, stranger.owner_id)
    assert not reserved_slugs.move_reservation("gone", old.owner_id, stranger.owner_id)  # moved already
    assert not reserved_slugs.move_reservation("kept", old.owner_id, stranger.owner_id)  # a live share's
    assert list(reserved_slugs.reserved_for(old.owner_id)) == []
    assert list(reserved_slugs.reserved_for(stranger.owner_id)) == ["gone"]


def test_locking_and_reopening_protected_shares_follow_the_owners_stored_tier(store_backend):
    """Each share's lock (reopening) checks in its transaction that the owner does not (does)
    pay: the condition, grace period included, as the engine evaluates it."""
    from chalicelib.store import shares as share_store
    share = make_share("payer@example.com", "paid-page", tier="pro", password_hash="x", webhook_url="https://h.example/")
    owner, now = share.owner_id, clock.epoch()
    assert change_pro_features(owner, lock=True, now=now) == 0  # still paying
    assert share_store.get_by_id(share.share_id, consistent=True).status == share_store.ACTIVE
    User(owner).update(actions=[User.grace_until.set(now + 60)])  # past due, in its grace period: still paid
    assert change_pro_features(owner, lock=True, now=now) == 0
    User(owner).update(actions=[User.grace_until.set(now - 1)])  # the grace period ended: not paid
    assert change_pro_features(owner, lock=False, now=now) == 0
    assert change_pro_features(owner, lock=True, now=now) == 1
    locked = share_store.get_by_id(share.share_id, consistent=True)
    assert (locked.status, locked.webhook_url) == (share_store.LOCKED, None)
    assert change_pro_features(owner, lock=False, now=now) == 0  # not paid
    User(owner).update(actions=[User.grace_until.remove(), User.tier.set("agent")])
    assert change_pro_features(owner, lock=False, now=now) == 1
    assert share_store.get_by_id(share.share_id, consistent=True).status == share_store.ACTIVE


def test_a_key_made_by_a_key_is_named_on_its_maker_and_revoked_with_it(store_backend, monkeypatch):
    """The creation's transaction adds the new key to its maker's ``made_keys`` only while
    the maker is not revoked; a revocation reads them from the maker's own item."""
    from chalicelib.services import apikeys
    owner = make_user("keys@example.com")
    maker = apikeys.create(owner, apikeys.KeyRequest(name="maker", scopes="keys:manage")).key
    made = apikeys.create(owner, apikeys.KeyRequest(name="made"), actor=maker).key
    assert ApiKey.get(maker.key_id, consistent_read=True).made_keys == {made.key_id}
    revoked = key_store.revoke_with_made(ApiKey.get(maker.key_id), (owner.user_id,), "2026-12-03T00:00:00.000Z")
    assert sorted(key.key_id for key in revoked) == sorted([maker.key_id, made.key_id])
    assert ApiKey.get(made.key_id, consistent_read=True).revoked_at == "2026-12-03T00:00:00.000Z"
    # Revoked and full at once (MAX_MADE_KEYS made): told revoked (401), not full (409).
    monkeypatch.setattr(key_store, "MAX_MADE_KEYS", 1)
    with pytest.raises(key_store.ParentRevoked):
        key_store.insert(ApiKey("key_late", key_hash="h", key_prefix="p", user_id=owner.user_id,
                                created_at="2026-12-03T00:00:01.000Z", created_by=f"key:{maker.key_id}"),
                         100, parent=ApiKey.get(maker.key_id))
    assert ApiKey.get(maker.key_id, consistent_read=True).made_keys == {made.key_id}
    assert key_store.revoke_with_made(ApiKey.get(maker.key_id), (owner.user_id,), "2026-12-04T00:00:00.000Z") == []


def test_the_open_checkout_is_replaced_only_by_compare_and_set(store_backend):
    from chalicelib.store import accounts
    User(user_id="u-checkout", created_at=clock.iso(clock.now())).save()
    accounts.replace_open_checkout("u-checkout", None, "cs_1")
    with pytest.raises(accounts.OpenCheckoutMoved) as moved:  # a second first checkout read "none" too
        accounts.replace_open_checkout("u-checkout", None, "cs_2")
    assert moved.value.current == "cs_1"
    with pytest.raises(accounts.OpenCheckoutMoved):
        accounts.replace_open_checkout("u-checkout", "cs_stale", "cs_2")
    accounts.replace_open_checkout("u-checkout", "cs_1", "cs_2")
    assert accounts.open_checkout("u-checkout") == "cs_2"
    with pytest.raises(accounts.OpenCheckoutMoved) as missing:  # never creates an account
        accounts.replace_open_checkout("u-nobody", None, "cs_3")
    assert missing.value.current is None and accounts.get("u-nobody") is None


def test_a_sessions_expiry_only_moves_out(backend_client, store_backend):
    """A request that read the session before another one extended it (or whose clock runs
    behind) computes an earlier expiry: its write is refused, the later expiry stays and the
    request goes on. An expiry beyond the lifetime's end (an earlier version's) is still
    brought back to it, and a revoked session is still told apart."""
    from chalicelib.crypto import token_hash
    from chalicelib.store import auth as auth_store
    from tests.conftest import sign_in
    token = sign_in(backend_client, "expiry@example.com")
    hashed = token_hash(token)
    read_early = auth_store.session(hashed)
    stored = int(read_early.expires_at)
    ends_at = stored + 100_000
    assert auth_store.extend_session(auth_store.session(hashed), stored + 5_000, ends_at)  # the fast request
    assert auth_store.extend_session(read_early, stored + 1_000, ends_at)  # the slow one: goes on
    assert auth_store.session(hashed).expires_at == stored + 5_000  # not pulled back
    assert auth_store.extend_session(auth_store.session(hashed), stored + 6_000, ends_at)
    assert auth_store.session(hashed).expires_at == stored + 6_000  # later still moves it
    # Beyond the lifetime's end: brought back to it, once.
    assert auth_store.extend_session(auth_store.session(hashed), stored + 5_000, stored + 5_000)
    assert auth_store.session(hashed).expires_at == stored + 5_000
    auth_store.delete_session(hashed)
    assert not auth_store.extend_session(read_early, stored + 9_000, ends_at)  # revoked meanwhile
    assert auth_store.session(hashed) is None
