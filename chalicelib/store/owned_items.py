"""An account's items that no listing of its own shows, found by owner without a Scan: what the
roadmap's export and deletion of an account read (docs/data-model.md, "Finding an account's items").

Each is a Query of its table's ``owner_index`` (of the users table's ``merged_index`` for the
accounts a user claimed): sparse (only the items of that kind carry the
owner attribute) and keys only, so the caller reads or deletes the items by key. A GSI is
eventually consistent: an item written a moment ago may be missing, so a deletion queries again
until nothing is left.
"""
from __future__ import annotations

from typing import Iterator, Tuple

from chalicelib.store.models import AuthItem, Delivery, LedgerItem, OutboxItem, User


def claimed_accounts(user_id: str) -> Iterator[str]:
    """The ids of the key-only accounts the user claimed (``merged_into``), each found the same
    way in turn: what stays under their ids is the user's (docs/data-model.md). Claims made
    before the index are on it too: DynamoDB indexes the items a new index finds."""
    return (account.user_id for account in User.merged_index.query(user_id))


def sessions(user_id: str) -> Iterator[str]:
    """The keys (``bearer#<sha256(token)>``) of the user's bearer sessions."""
    return (item.pk for item in AuthItem.owner_index.query(user_id))


def webhook_events(owner_id: str) -> Iterator[str]:
    """The ids of the webhook events recorded for the owner's shares, deleted shares' included,
    oldest first. An event keeps the owner its share had when it was recorded (a claim moves the
    share, not its events)."""
    return (item.delivery_id for item in Delivery.owner_index.query(owner_id))


def usage_events(user_id: str) -> Iterator[Tuple[str, str]]:
    """The keys (``queue``, ``event_key``) of the account's agent-tier usage events: pending,
    refused, held and the copies of those sent."""
    return ((item.queue, item.event_key) for item in OutboxItem.owner_index.query(user_id))


def pro_feature_checkpoints(user_id: str) -> Iterator[str]:
    """The keys (``job#pro-features#<user>@…``) of the checkpoints of the runs the user's Stripe
    events left to the quota reset, those written since the ledger kept their owner."""
    return _ledger_items(user_id, "job#pro-features#")


def background_exports(user_id: str) -> Iterator[str]:
    """The keys (``export#<id>``) of the background exports the user started (by a session or a
    key; running, or finished and kept 12 hours), those written since they carry their owner.
    Each item's ``detail`` names its S3 file (``key``); the rows runs kept beside it are under
    ``<key>.held-``."""
    return _ledger_items(user_id, "export#")


def stripe_event_markers(user_id: str) -> Iterator[str]:
    """The keys (``stripe-event#<id>``) of the markers of the Stripe events applied to the user's
    subscription (kept 30 days), those written since a marker carries its owner."""
    return _ledger_items(user_id, "stripe-event#")


def _ledger_items(user_id: str, prefix: str) -> Iterator[str]:
    """The ledger's ``owner_index`` holds every kind that carries ``owner_id``: one kind's keys."""
    return (item.pk for item in LedgerItem.owner_index.query(user_id) if item.pk.startswith(prefix))
