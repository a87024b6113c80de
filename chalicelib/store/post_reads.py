"""A share as a post reads and checks it (services/targets.py): one read per cold post, and
condition checks in the post's transaction that what it read or was hinted still holds.

- By share id: the share and its period count in one ``BatchGetItem`` (``read_for_post``);
  the owner's tier comes from the share's hint (``Share.owner_tier``).
- By slug: the slug's claim alone, whose ``post_hint`` describes the share and its owner
  (``hinted_share``). Written with the claim (store/shares.insert) and rewritten by the post
  that finds it stale (``set_post_hint``); never trusted alone: ``check_still_named`` checks
  the share itself in the post's transaction.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from chalicelib.errors import DependencyUnavailable
from chalicelib.store import spike_counters, transactions
from chalicelib.store.models import LedgerItem, Share
from chalicelib.store.shares import DELETING, HINTED_FIELDS, post_hint, share_pk, slug_pk
from chalicelib.store.transactions import Transaction, update_if


def slug_claim(slug: str) -> Optional[Share]:
    """The slug's claim (``share_id``, and ``post_hint`` when it has one), or None when no
    share ever held the slug. A deleted share's claim is retired: no ``share_id``, its owner
    in ``reserved_for``."""
    try:
        return Share.get(slug_pk(slug))
    except Share.DoesNotExist:
        return None


def hinted_share(claim: Share, slug: str) -> Optional[Share]:
    """The share as its slug's claim describes it (unchecked: the post's guard checks it), or
    None when the claim has no hint (claims made before hints)."""
    hint = claim.post_hint
    if not isinstance(hint, dict) or not hint.get("owner_id"):
        return None
    return Share(share_pk(claim.share_id), share_id=claim.share_id, slug=slug,
                 **{field: hint.get(field) for field in HINTED_FIELDS})


def set_post_hint(slug: str, share: Share) -> None:
    """Rewrite a slug's claim's hint from ``share`` (as read), if the claim still names it."""
    update_if(Share(slug_pk(slug)), [Share.post_hint.set(post_hint(share))], Share.share_id == share.share_id)


def read_for_post(share_id: str, period: str) -> Tuple[Optional[Share], int]:
    """The share and how many spikes it received in ``period`` while its owner's tier had no
    limit (store/spike_counters.py), in one round trip: a BatchGetItem over the share and the count's
    shards. (None, 0) for no share, or one being deleted."""
    table, counters = Share.Meta.table_name, LedgerItem.Meta.table_name
    request: Dict[str, Any] = {
        table: {"Keys": [{"pk": {"S": share_pk(share_id)}}], "ConsistentRead": True},
        counters: {"Keys": [{"pk": {"S": pk}} for pk in spike_counters.unlimited_quota_keys(share_id, period)],
                   "ConsistentRead": True}}
    share, counted = None, 0
    for attempt in range(10):
        response = Share._get_connection().connection.dispatch("BatchGetItem", {"RequestItems": request})
        found = response.get("Responses", {})
        share = next((Share.from_raw_data(item) for item in found.get(table, [])), share)
        counted += sum(int(item["count"]["N"]) for item in found.get(counters, []) if "count" in item)
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return (share, counted) if share is not None else (None, 0)
        transactions.backoff(attempt)
    raise DependencyUnavailable("The store is busy; retry shortly")


def set_owner_hint(share_id: str, tier: Optional[str], grace_until: Optional[float], cap_cents: Optional[int]) -> None:
    """Correct what a share says about its owner's tier, grace and cap (``Share.owner_tier``...),
    if it still exists."""
    update_if(Share(share_pk(share_id)),
              [attribute.set(value) if value is not None else attribute.remove()
               for attribute, value in ((Share.owner_tier, tier), (Share.owner_grace_until, grace_until),
                                        (Share.owner_cap_cents, cap_cents))],
              Share.pk.exists())


# --- in the post's transaction: what was read or hinted still holds -------------------------

def check_still_named(tx: Transaction, slug: Optional[str], seen: Share) -> None:
    """In a post's transaction, condition checks (``guard:share``; ``guard:slug`` for a post by
    ``slug``) that the share is as ``seen``: the same owner, slug, name and webhook (the event
    is built from them), protected or not as seen (who may post by slug depends on it), its
    deletion not started, and the slug still pointing at it."""
    condition = (Share.owner_id == seen.owner_id) & (Share.status.does_not_exist() | (Share.status != DELETING))
    condition &= Share.password_hash.exists() if seen.password_hash else Share.password_hash.does_not_exist()
    for attribute, value in ((Share.slug, seen.slug), (Share.name, seen.name), (Share.webhook_url, seen.webhook_url),
                             (Share.webhook_secret_nonce, seen.webhook_secret_nonce)):
        condition &= attribute.does_not_exist() if value is None else attribute == value
    tx.check("guard:share", Share, share_pk(seen.share_id), condition)
    if slug is not None:
        tx.check("guard:slug", Share, slug_pk(slug), Share.share_id == seen.share_id)


def check_no_unlimited_count(tx: Transaction, share_id: str, period: str) -> None:
    """In a post's transaction, condition checks (``guard:...``) that the share received nothing
    in ``period`` while its owner's tier had no limit: what a post assumed without reading it."""
    for n, key in enumerate(spike_counters.unlimited_quota_keys(share_id, period)):
        tx.check(f"guard:unlimited-count-{n}", LedgerItem, key,
                 LedgerItem.count.does_not_exist() | (LedgerItem.count == 0))
