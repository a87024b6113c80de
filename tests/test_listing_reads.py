"""A page of GET /spikes read without a credential evaluates a bounded number of spikes and
Queries, and answers what it found with a cursor from where its reads ended (docs/security.md,
280): a filter matching little read a partition of any size, until the function had 3 s left,
and anyone with a public project key or a share's id could ask for that 120 times a minute per
network. Paged to the end, the pages hold exactly what one unbounded page does; a page without a
filter (`spikes pull --from`, which reads one page) and the feedback's owner (or the admin) read
as before; any other credential reads as a caller without one (282). On moto and on DynamoDB
Local (backend_client)."""
from __future__ import annotations

import collections
from typing import List, Tuple

import pytest

from chalicelib.api import spikes as spike_routes
from chalicelib.services import push_listing
from chalicelib.store import rows
from tests.conftest import ADMIN_TOKEN, call, sign_in, sign_up_agents
from tests.factories import make_share
from tests.test_apikeys import create_key
from tests.test_open_spikes import _stored, counting_reads

STORED = 300
CLI = {"User-Agent": "ureq/2.12.1"}


@pytest.fixture
def public_share(backend_client):
    share = make_share("owner@example.com", "big")
    # the oldest three are loved, and every 7th of the rest is liked
    _stored(share, STORED, lambda i: {"rating": "love" if i < 3 else ("like" if i % 7 == 0 else "meh")})
    return share


def _paged(client, query: str, reads: collections.Counter, most: int = 50, **kwargs) -> Tuple[List[List[str]], list]:
    """Every page of a listing, followed by its cursors, and what each request read (its
    spikes' Queries and the items they evaluated)."""
    pages: List[List[str]] = []
    spent = []
    cursor = None
    for _ in range(most):
        reads.clear()
        status, body, _ = call(client, "GET", f"/spikes?{query}" + (f"&cursor={cursor}" if cursor else ""), **kwargs)
        assert status == 200, body
        spent.append((reads["items read"], _spike_queries(reads)))
        pages.append([spike["id"] for spike in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages, spent
    raise AssertionError(f"still paging after {most} requests")


def _spike_queries(reads: collections.Counter) -> int:
    return sum(count for name, count in reads.items() if name and name.endswith("_index"))


def _budget(monkeypatch, items: int = 2000, queries: int = 8) -> None:
    monkeypatch.setattr(spike_routes, "ANONYMOUS_READ_ITEMS", items)
    monkeypatch.setattr(spike_routes, "ANONYMOUS_READ_QUERIES", queries)


@pytest.mark.parametrize("budget, read_size, most_items, most_queries", [
    ({"items": 60}, 1000, 60, 2),  # a first read of 50, then the 10 left
    ({"queries": 3}, 20, 90, 3),  # reads of 20 after the first 50
])
def test_a_page_without_a_credential_reads_no_more_than_its_budget_and_the_cursor_continues(
        backend_client, public_share, monkeypatch, budget, read_size, most_items, most_queries):
    _budget(monkeypatch, **budget)
    monkeypatch.setattr(rows, "MAX_READ_SIZE", read_size)
    reads = counting_reads(monkeypatch)
    query = f"project={public_share.share_id}&rating=love&limit=10"
    pages, spent = _paged(backend_client, query, reads)
    # Each request read its budget at most (before: the first read the whole partition, 300).
    assert all(items <= most_items and queries <= most_queries for items, queries in spent), spent
    assert len(pages) > 1 and pages[0] == []  # the newest reads matched nothing: an empty page, with a cursor
    assert [spike_id for page in pages for spike_id in page] == ["s00002", "s00001", "s00000"]
    assert sum(items for items, _ in spent) == STORED  # nothing read twice

    # The owner, with a credential, reads on as before: one page.
    token = sign_in(backend_client, "owner@example.com")
    pages, spent = _paged(backend_client, query, reads, token=token)
    assert pages == [["s00002", "s00001", "s00000"]] and spent[0][0] == STORED


def test_a_filter_matching_often_pages_as_before_without_a_credential(backend_client, public_share, monkeypatch):
    _budget(monkeypatch, items=60)
    reads = counting_reads(monkeypatch)
    wanted = [f"s{i:05d}" for i in reversed(range(STORED)) if i >= 3 and i % 7 == 0]
    pages, _ = _paged(backend_client, f"project={public_share.share_id}&rating=like&limit=5", reads)
    assert [spike_id for page in pages for spike_id in page] == wanted
    assert all(len(page) <= 5 for page in pages)


@pytest.mark.parametrize("headers, size", [(CLI, STORED), ({}, 100)])
def test_a_page_without_a_filter_is_never_cut_by_the_budget(backend_client, public_share, monkeypatch, headers, size):
    """`spikes pull --from` (no credential, no filter, the largest page) reads one page: every
    item read is listed, so the page is whole in one Query whatever the budget."""
    _budget(monkeypatch, items=20, queries=1)
    reads = counting_reads(monkeypatch)
    status, body, _ = call(backend_client, "GET", f"/spikes?project={public_share.share_id}", headers=headers)
    assert status == 200 and [spike["id"] for spike in body["data"]] == [f"s{i:05d}" for i in
                                                                        reversed(range(STORED))][:size]
    assert (body["next_cursor"] is None) == (size == STORED)
    assert _spike_queries(reads) == 1


def _credential(client, who: str) -> str:
    """A credential of ``who``: a session, or an API key it made (``<who> key <scopes>``)."""
    email, _, scopes = who.partition(" key ")
    token = sign_in(client, email)
    return create_key(client, token, scopes=scopes)["api_key"] if scopes else token


@pytest.mark.parametrize("who", ["stranger@example.com", "stranger@example.com key usage:read"])
def test_a_credential_on_a_project_not_its_own_reads_under_the_same_budget(backend_client, public_share, monkeypatch,
                                                                            who):
    """Any account's credential (a free account is a magic link away, an agent's a key away)
    read another's public share with no budget and no count (docs/security.md, 282): it now
    reads as a caller without one, and its cursors still reach every match."""
    _budget(monkeypatch, items=60)
    token = _credential(backend_client, who)
    reads = counting_reads(monkeypatch)
    pages, spent = _paged(backend_client, f"project={public_share.share_id}&rating=love&limit=10", reads, token=token)
    assert all(items <= 60 for items, _ in spent), spent  # before: one page, all 300 read
    assert len(pages) > 1 and pages[0] == []
    assert [spike_id for page in pages for spike_id in page] == ["s00002", "s00001", "s00000"]
    assert sum(items for items, _ in spent) == STORED

    # The push's bare array (?token=, ureq) of that project ends where a page's reads were cut
    # (its pages' first reads are whole, 1,001 items: the Queries are cut here).
    _budget(monkeypatch, queries=2)
    monkeypatch.setattr(push_listing, "READ_SIZE", 10)
    monkeypatch.setattr(rows, "MAX_READ_SIZE", 20)
    reads.clear()
    status, body, headers = call(backend_client, "GET", f"/spikes?token={token}&project={public_share.share_id}"
                                 "&rating=love", headers=CLI)
    assert status == 200 and body == [] and headers.get(spike_routes.NEXT_CURSOR)
    assert _spike_queries(reads) == 2 and reads["items read"] == 70


@pytest.mark.parametrize("who", ["owner@example.com key spikes:read", "admin"])
def test_the_owner_and_the_admin_read_a_project_page_whole(backend_client, public_share, monkeypatch, who):
    _budget(monkeypatch, items=60)
    token = ADMIN_TOKEN if who == "admin" else _credential(backend_client, who)
    reads = counting_reads(monkeypatch)
    pages, spent = _paged(backend_client, f"project={public_share.share_id}&rating=love&limit=10", reads, token=token)
    assert pages == [["s00002", "s00001", "s00000"]] and spent[0][0] == STORED


def test_an_owners_key_without_spikes_read_reads_the_owners_project_as_anyone_does(backend_client, public_share,
                                                                                  monkeypatch):
    """An owner's key granted no access to feedback (``usage:read`` for a billing script,
    ``shares:write`` for a CI) listed and exported the owner's public share as the owner does, with
    no read budget and uncounted (282 took it for the owner, whatever its scopes): leaked, it read
    whole partitions as often as its holder liked. It reads only what anyone may, and now as anyone
    does (docs/security.md, 327): its page is cut at the budget and counted, its export refused past it."""
    import json
    _budget(monkeypatch, items=60)
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", 100)
    token = _credential(backend_client, "owner@example.com key usage:read")
    reads = counting_reads(monkeypatch)
    status, body, headers = call(backend_client, "GET", f"/spikes?project={public_share.share_id}&rating=love&limit=10",
                                 token=token)
    assert status == 200 and body["data"] == [] and body["next_cursor"], body  # before: all 300 read, 3 listed
    assert reads["items read"] <= 60 and headers["X-RateLimit-Limit"], (dict(reads), headers)
    answer = backend_client.http.get(f"/spikes/export?project={public_share.share_id}&rating=love&format=jsonl",
                                     headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 409 and json.loads(answer.body)["code"] == "EXPORT_TOO_LARGE"


def test_a_bare_array_of_feedback_not_ones_own_holds_one_page(backend_client, public_share, monkeypatch):
    """The push's bare array (``?token=``, ``ureq``) holds up to 10,000 spikes, read a page at a
    time, and counts as one listing of the network's (307): any key (an agent's signup) on someone
    else's project read ten pages for one count, ten times what 307 and 284 allow a network. The
    push lists only its caller's own feedback: for anyone else the array now holds one page, and
    its X-Next-Cursor goes on (docs/security.md, 328). The owner's array is as before."""
    monkeypatch.setattr(spike_routes, "MAX_LIMIT", 50)
    monkeypatch.setattr(push_listing, "READ_SIZE", 20)
    [agent] = sign_up_agents(backend_client, 1)
    query = f"/spikes?project={public_share.share_id}"
    status, body, headers = call(backend_client, "GET", f"{query}&token={agent}", headers=CLI)
    assert status == 200 and len(body) == 50 and headers["X-RateLimit-Limit"], len(body)  # before: all 300
    status, rest, _ = call(backend_client, "GET", f"{query}&token={agent}&cursor={headers[spike_routes.NEXT_CURSOR]}",
                           headers=CLI)
    assert status == 200 and rest[0]["id"] < body[-1]["id"] and len(rest) == 50
    owner = sign_in(backend_client, "owner@example.com")
    status, body, headers = call(backend_client, "GET", f"{query}&token={owner}", headers=CLI)
    assert status == 200 and len(body) == STORED and spike_routes.NEXT_CURSOR not in headers


def test_an_export_of_a_project_not_ones_own_reads_no_more_than_its_budget(backend_client, public_share, monkeypatch):
    """GET /spikes/export read a whole project for whoever named it, a filter matching nothing
    included (docs/security.md, 284): now ANONYMOUS_EXPORT_ITEMS at most, then 409; the owner
    exports it all. On either engine: what a Query evaluates is DynamoDB's ScannedCount."""
    import json
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", 100)
    reads = counting_reads(monkeypatch)
    query = f"/spikes/export?project={public_share.share_id}&rating=love&format=jsonl"
    answer = backend_client.http.get(query)
    assert answer.status_code == 409 and json.loads(answer.body)["code"] == "EXPORT_TOO_LARGE"
    assert reads["items read"] <= 100 + 1  # and one item read to see whether any follows
    token = sign_in(backend_client, "owner@example.com")
    reads.clear()
    answer = backend_client.http.get(query, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.body.count(b"\n") == 3 and reads["items read"] == STORED
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", STORED + 1)  # a project within it: as before
    answer = backend_client.http.get(query)
    assert answer.status_code == 200 and answer.body.count(b"\n") == 3


@pytest.mark.parametrize("rating", ["", "&rating=love"])
def test_an_export_of_exactly_its_budget_is_answered_and_one_more_is_refused(backend_client, public_share,
                                                                          monkeypatch, rating):
    """ANONYMOUS_EXPORT_ITEMS is how many spikes an export not the caller's may read: a project
    of exactly that many was refused too, since the read that ends at the budget also ends with
    a LastEvaluatedKey (DynamoDB's, whenever a Query's Limit is reached) and the next read was
    refused before asking whether anything followed. Filtered or not: the budget counts what
    the reads evaluate."""
    import json
    query = f"/spikes/export?project={public_share.share_id}{rating}&format=jsonl"
    expected = 3 if rating else STORED
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", STORED)
    reads = counting_reads(monkeypatch)
    answer = backend_client.http.get(query)
    assert answer.status_code == 200, answer.body
    assert answer.body.count(b"\n") == expected and reads["items read"] == STORED
    monkeypatch.setattr(spike_routes, "ANONYMOUS_EXPORT_ITEMS", STORED - 1)
    reads.clear()
    answer = backend_client.http.get(query)
    assert answer.status_code == 409 and json.loads(answer.body)["code"] == "EXPORT_TOO_LARGE"
    assert reads["items read"] == STORED  # the budget's, and the one that shows more follow


@pytest.mark.parametrize("scopes", ["spikes:read", "usage:read"])
def test_a_key_on_a_project_not_its_own_reads_the_owners_account_once(backend_client, public_share, monkeypatch,
                                                                       scopes):
    """Whether a key acts as a share's owner (a claim's window: ownership.py) is one strongly
    consistent read of the owner's account. A listing asked it for the reviewers' addresses and
    again for the read budget: two reads per page for every key on a project not its own."""
    from pynamodb.connection.base import Connection
    token = _credential(backend_client, f"stranger@example.com key {scopes}")
    owner_reads = []
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        if operation_name == "GetItem" and operation_kwargs.get("Key", {}).get("user_id") == {"S": public_share.owner_id}:
            owner_reads.append(operation_kwargs.get("ConsistentRead"))
        return original(self, operation_name, operation_kwargs)
    monkeypatch.setattr(Connection, "_make_api_call", counting)
    status, body, _ = call(backend_client, "GET", f"/spikes?project={public_share.share_id}&limit=10", token=token)
    assert status == 200 and len(body["data"]) == 10 and "email" not in str(body["data"])
    # A key without spikes:read reads as anyone does whoever owns the share: nothing to ask (327).
    assert owner_reads == ([True] if scopes == "spikes:read" else []), owner_reads
