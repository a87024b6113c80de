"""PynamoDB models. Keys and indexes follow the access patterns in docs/data-model.md.

Table names, endpoint and region are bound at run time by ``configure_models`` (settings are
read lazily), never at import time.
"""
from __future__ import annotations

from typing import Iterable, List, Type

from pynamodb.attributes import (BooleanAttribute, JSONAttribute, ListAttribute, MapAttribute, NumberAttribute,
                                 UnicodeAttribute, UnicodeSetAttribute)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.settings import Settings
from chalicelib.store.tables import table_name


class _Base(Model):
    class Meta:
        abstract = True
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"
        max_retry_attempts = 2
        connect_timeout_seconds = 2
        read_timeout_seconds = 5


# --- users -----------------------------------------------------------------------------------

class StripeCustomerIndex(GlobalSecondaryIndex["User"]):
    class Meta:
        index_name = "stripe_customer_index"
        projection = KeysOnlyProjection()

    stripe_customer_id = UnicodeAttribute(hash_key=True)


class MergedIntoIndex(GlobalSecondaryIndex["User"]):
    """The key-only accounts a user claimed (sparse: only they carry ``merged_into``): what
    stays under their ids (webhook and usage events, ``usage#`` and ``rl#`` items, what a
    claim has still to move) is the user's to export and delete (docs/data-model.md)."""
    class Meta:
        index_name = "merged_index"
        projection = KeysOnlyProjection()

    merged_into = UnicodeAttribute(hash_key=True)


class User(_Base):
    """pk user_id = uuid5(email): one user per address without a uniqueness side-table.
    Key-only accounts (an agent's self-signup) have a random uuid4 and no e-mail until a
    signed-in user claims them (``merged_into`` then names that user)."""

    class Meta(_Base.Meta):
        table_name = "users"

    user_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    tier = UnicodeAttribute(default="free")
    created_at = UnicodeAttribute()
    active_shares = NumberAttribute(default=0)
    stripe_customer_id = UnicodeAttribute(null=True)
    subscription_id = UnicodeAttribute(null=True)
    subscription_status = UnicodeAttribute(null=True)
    # Stripe `event.created` of the newest event applied: older events never overwrite it.
    subscription_event_at = NumberAttribute(null=True)
    # Epoch seconds until which a past-due subscription keeps Pro.
    grace_until = NumberAttribute(null=True)
    # "Sign out everywhere" bumps it; sessions minted under an older value stop working.
    session_epoch = NumberAttribute(null=True)
    # Agent tier: the account's monthly spending cap in cents (None = no cap).
    monthly_cap_cents = NumberAttribute(null=True)
    # Key-only accounts: set once claimed; their keys, shares and spikes now belong to that user.
    merged_into = UnicodeAttribute(null=True)
    # Key-only accounts: the own spikes stored (in each one's transaction, only while not merged)
    # and those gone since (deleted, or moved by a claim). More stored than gone: a claim knows
    # some are left that the owner index does not show yet (docs/security.md 74).
    own_spikes = NumberAttribute(null=True)
    own_spikes_gone = NumberAttribute(null=True)
    # The Checkout session whose URL was handed out last: expired before another replaces it.
    open_checkout_id = UnicodeAttribute(null=True)
    # The ids of the API keys holding a place under SPIKES_MAX_API_KEYS ({key_id: true}),
    # changed in the transaction that writes, revokes or moves a key (store/key_slots.py).
    # Absent on accounts from before it was kept, until their first key change counts them.
    live_keys = MapAttribute(null=True)
    # Counting an account without live_keys, a bounded read a request (store/key_slots.py): the
    # owner index's key where the last request stopped, and the live key ids found before it.
    live_keys_counted_to = UnicodeAttribute(null=True)
    live_keys_counting = MapAttribute(null=True)
    # People: the key-only accounts whose claim into this one began and did not complete, and how
    # many claims ever began into it (store/claim_marks.py: an own-feedback export asks them).
    claims_moving = UnicodeSetAttribute(null=True)
    claims_begun = NumberAttribute(null=True)
    stripe_customer_index = StripeCustomerIndex()
    merged_index = MergedIntoIndex()


# --- auth ------------------------------------------------------------------------------------

class SessionOwnerIndex(GlobalSecondaryIndex["AuthItem"]):
    """A user's bearer sessions (sparse: only ``bearer#`` items carry ``user_id``), keys only: the
    account's export and deletion find them without a scan (store/owned_items.py)."""
    class Meta:
        index_name = "owner_index"
        projection = KeysOnlyProjection()

    user_id = UnicodeAttribute(hash_key=True)


class AuthItem(_Base):
    """One table, items told apart by key prefix: ``login#``, ``bearer#``, ``device#``,
    ``usercode#``, ``poll#``. Secrets are never keys: keys hold SHA-256 hashes."""

    class Meta(_Base.Meta):
        table_name = "auth"

    pk = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    user_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    purpose = UnicodeAttribute(null=True)
    created_at = NumberAttribute(default=0)
    expires_at = NumberAttribute(null=True)  # epoch seconds; the table TTL attribute
    # A bearer session: when its person signed in (kept through rotations); the session's
    # lifetime counts from it. None on sessions minted before it: their created_at stands in.
    signed_in_at = NumberAttribute(null=True)
    # Login tokens / device codes: when they were consumed, verified, collected.
    used_at = NumberAttribute(null=True)
    verified_user_id = UnicodeAttribute(null=True)
    # The user's session_epoch when the sign-in was approved: a "sign out everywhere" before it
    # is collected voids it too.
    approved_epoch = NumberAttribute(null=True)
    collected_at = NumberAttribute(null=True)
    # Pointers: a poll item or user-code item names the login/device item it belongs to.
    target = UnicodeAttribute(null=True)
    user_code = UnicodeAttribute(null=True)
    label = UnicodeAttribute(null=True)
    # What a person approves (login and device items): who asked, from where, with which code.
    requester_ip = UnicodeAttribute(null=True)
    request_code = UnicodeAttribute(null=True)
    # Bearer sessions: the owner's session_epoch when minted (expires_at is the idle expiry).
    session_epoch = NumberAttribute(null=True)
    owner_index = SessionOwnerIndex()


# --- API keys --------------------------------------------------------------------------------

class KeyOwnerIndex(GlobalSecondaryIndex["ApiKey"]):
    class Meta:
        index_name = "owner_index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ApiKey(_Base):
    """pk ``key_<16 base32>``; the key itself (``sk_spikes_<id part><secret>``) names its item,
    so authenticating is one GetItem and a constant-time comparison of SHA-256 hashes. Only the
    hash and a short display prefix are stored."""

    class Meta(_Base.Meta):
        table_name = "keys"

    key_id = UnicodeAttribute(hash_key=True)
    key_hash = UnicodeAttribute()
    key_prefix = UnicodeAttribute()
    user_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    scopes = UnicodeAttribute(default="full")
    monthly_cap_cents = NumberAttribute(null=True)
    # ISO 8601 UTC with milliseconds: the format the CLI parses and compares.
    created_at = UnicodeAttribute()
    expires_at = UnicodeAttribute(null=True)
    revoked_at = UnicodeAttribute(null=True)
    last_used_at = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)  # "signup" | "session" | "key:<key_id>"
    # Ids of the keys this key created, added in each creation's transaction (absent on keys
    # that created none, or only before it was kept): a revocation reads them without the
    # owner index's lag (store/apikeys.revoke_with_made).
    made_keys = UnicodeSetAttribute(null=True)
    # True on keys written since every key they make is named in ``made_keys``: revoking one
    # reads no owner index (absent on older keys, whose children may be found only there).
    made_keys_complete = BooleanAttribute(null=True)
    # An older key's look for the keys it made on the owner index, a bounded part a request: the
    # partition and the index's key where the last request stopped (store/older_made_keys.py).
    made_keys_read_to = UnicodeAttribute(null=True)
    # The keys that made this one, nearest first (its maker, that key's maker, ...): their caps
    # bound what it spends too (services/key_budgets.py). Absent on keys made otherwise or before.
    made_by = ListAttribute(of=UnicodeAttribute, null=True)
    # The key-only account a claim moved this key from, so claiming with it again answers
    # that account (services/claims.py) rather than the claimer's own.
    claimed_from = UnicodeAttribute(null=True)
    owner_index = KeyOwnerIndex()


# --- shares ----------------------------------------------------------------------------------

class OwnerSharesIndex(GlobalSecondaryIndex["Share"]):
    class Meta:
        index_name = "owner_index"
        projection = AllProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ReservedSlugsIndex(GlobalSecondaryIndex["Share"]):
    """The slugs retired for an owner (sparse: only retired slug claims have ``reserved_for``),
    so they move with a claimed account and can be released with it, without a scan."""
    class Meta:
        index_name = "reserved_index"
        projection = KeysOnlyProjection()

    reserved_for = UnicodeAttribute(hash_key=True)
    retired_at = UnicodeAttribute(range_key=True)


class OwnerStatusIndex(GlobalSecondaryIndex["Share"]):
    """An owner's shares by status, keys only: the shares whose deletion started and is not
    finished (``deleting``, the tombstone stays until their spikes are gone), which the owner's
    reads of feedback leave out (store/shares.deleting_of): one Query of this owner's, reading
    nothing when they have none. A write changes an entry only when a share is created,
    deleted or changes status or owner."""
    class Meta:
        index_name = "owner_status_index"
        projection = KeysOnlyProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(range_key=True)


class Share(_Base):
    """pk ``share#<id>`` holds the share; pk ``slug#<slug>`` claims a slug (attribute
    ``share_id``), or, once its share is deleted, keeps it for that share's owner
    (``reserved_for``, no ``share_id``). Slug claims carry no owner_id, so owner_index stays
    sparse."""

    class Meta(_Base.Meta):
        table_name = "shares"

    pk = UnicodeAttribute(hash_key=True)
    share_id = UnicodeAttribute(null=True)  # absent only on a retired slug claim
    slug = UnicodeAttribute(null=True)
    owner_id = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute(null=True)
    # Bumped when the password changes so old unlock cookies stop working.
    password_version = NumberAttribute(default=0)
    webhook_url = UnicodeAttribute(null=True)
    # Outbound webhooks: the signing secret is derived from the server key and this nonce
    # (never stored); during a rotation's grace period the previous nonce signs too.
    webhook_secret_nonce = UnicodeAttribute(null=True)
    webhook_previous_nonce = UnicodeAttribute(null=True)
    webhook_previous_until = NumberAttribute(null=True)
    webhook_paused_at = UnicodeAttribute(null=True)
    webhook_pause_reason = UnicodeAttribute(null=True)
    file_count = NumberAttribute(default=0)
    total_bytes = NumberAttribute(default=0)
    # Uploaded files: {relative path: {"size": n, "type": mime}}.
    files = JSONAttribute(null=True)
    # A presigned upload not completed yet, made with an API key on a tier that holds no charge
    # (the agent tier's held charge records the same): the key whose usage of ``counted_period``
    # counts it (``keyusage#<key>#<period>``), given back if it never completes.
    counted_key_id = UnicodeAttribute(null=True)
    counted_period = UnicodeAttribute(null=True)
    # What the owner's tier and grace period were when last seen here: a hint that lets a cold
    # post skip reading the owner. Never trusted alone: the post's transaction checks the owner
    # item against it (services/targets.py), and a wrong hint is corrected by that post.
    owner_tier = UnicodeAttribute(null=True)
    owner_grace_until = NumberAttribute(null=True)
    owner_cap_cents = NumberAttribute(null=True)  # the agent tier's account cap (absent: none), hinted alike
    # On a slug claim: the share it names as a post needs it (owner, name, webhook, the owner's
    # tier, grace and cap hints), so a cold post by slug reads one item. A hint too: the post's transaction
    # checks the share itself, and the post that finds it stale rewrites it (store/post_reads.py).
    post_hint = JSONAttribute(null=True)
    # On a retired slug claim: whose deleted share held the slug (only they may claim it again:
    # its old links must not lead to someone else's page) and when it was retired.
    reserved_for = UnicodeAttribute(null=True)
    retired_at = UnicodeAttribute(null=True)
    owner_index = OwnerSharesIndex()
    reserved_index = ReservedSlugsIndex()
    owner_status_index = OwnerStatusIndex()


# --- spikes ----------------------------------------------------------------------------------

class PartitionIndex(GlobalSecondaryIndex["Spike"]):
    """A project partition's spikes, newest first. Stored as ``project_index`` keyed by the
    attribute ``project``: those names predate the code's ``partition`` and renaming them in
    DynamoDB would mean building a new index and rewriting every item."""
    class Meta:
        index_name = "project_index"
        projection = AllProjection()

    partition = UnicodeAttribute(hash_key=True, attr_name="project")
    sort_key = UnicodeAttribute(range_key=True)


class OwnerSpikesIndex(GlobalSecondaryIndex["Spike"]):
    class Meta:
        index_name = "owner_index"
        projection = AllProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class OpenOwnerSpikesIndex(GlobalSecondaryIndex["Spike"]):
    """Sparse: an owner's open spikes only, newest first (``open_sort_key`` is the spike's
    ``sort_key`` while it is open, absent once resolved): a ``resolved=false`` listing reads
    no resolved spike (store/open_spikes.py)."""
    class Meta:
        index_name = "open_owner_index"
        projection = AllProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    open_sort_key = UnicodeAttribute(range_key=True)


class OpenPartitionIndex(GlobalSecondaryIndex["Spike"]):
    """Sparse: a project partition's open spikes only, newest first: ``open_owner_index`` for a
    project's ``resolved=false`` listings and exports, keyed by the stored ``project`` as
    ``project_index`` is (store/open_spikes.py)."""
    class Meta:
        index_name = "open_project_index"
        projection = AllProjection()

    partition = UnicodeAttribute(hash_key=True, attr_name="project")
    open_sort_key = UnicodeAttribute(range_key=True)


class FeedIndex(GlobalSecondaryIndex["Spike"]):
    class Meta:
        index_name = "feed_index"
        projection = AllProjection()

    feed = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class SpikeIdIndex(GlobalSecondaryIndex["Spike"]):
    class Meta:
        index_name = "id_index"
        projection = AllProjection()

    public_id = UnicodeAttribute(hash_key=True)
    partition = UnicodeAttribute(range_key=True, attr_name="project")


class SpikeIdOwnerIndex(GlobalSecondaryIndex["Spike"]):
    """A lookup by id reads only the caller's spikes: ``owner_project`` starts with the owner
    (store/spike_ids.py). Replaces ``id_index``, which a later version drops."""
    class Meta:
        index_name = "id_owner_index"
        projection = AllProjection()

    public_id = UnicodeAttribute(hash_key=True)
    owner_project = UnicodeAttribute(range_key=True)


class Spike(_Base):
    """pk spike_id: a hash of (project partition, public id), so one id is unique within a
    project and free in every other. ``public_id`` is the id clients see: the client's own id
    when it sent one, else a generated ``spk_`` id. ``partition`` (stored as ``project``) is
    the share id when the project key names a share, ``user#<user id>#key#<projectKey>`` for
    an authenticated caller's own project key, else ``key#<projectKey>``. ``sort_key`` =
    ``<received ISO time>#<spike_id>``: unique, so cursors never skip or repeat items that
    share a timestamp."""

    class Meta(_Base.Meta):
        table_name = "spikes"

    spike_id = UnicodeAttribute(hash_key=True)
    public_id = UnicodeAttribute(null=True)  # absent on items stored before ids were kept
    # The project partition, not the project key (that is ``project_key``). The stored name
    # stays ``project``: renaming it would mean rewriting every item and both indexes on it.
    partition = UnicodeAttribute(attr_name="project")
    sort_key = UnicodeAttribute()
    feed = UnicodeAttribute(default="all")
    owner_id = UnicodeAttribute(null=True)
    # ``<owner_id>#<partition>`` (``#<partition>`` without an owner): absent on items stored
    # before it existed until ``spike_ids.backfill`` gives it to them.
    owner_project = UnicodeAttribute(null=True)
    share_id = UnicodeAttribute(null=True)
    client_id = UnicodeAttribute(null=True)
    type = UnicodeAttribute()
    project_key = UnicodeAttribute()
    page = UnicodeAttribute(default="")
    url = UnicodeAttribute(default="")
    comments = UnicodeAttribute(default="")
    timestamp = UnicodeAttribute(default="")
    rating = UnicodeAttribute(null=True)
    reviewer_id = UnicodeAttribute(default="anon")
    reviewer = JSONAttribute(null=True)
    selector = UnicodeAttribute(null=True)
    xpath = UnicodeAttribute(null=True)
    element_text = UnicodeAttribute(null=True)
    bounding_box = JSONAttribute(null=True)
    viewport = JSONAttribute(null=True)
    resolved = BooleanAttribute(default=False)
    resolved_at = UnicodeAttribute(null=True)
    # ``sort_key`` while open, absent once resolved: the key of ``open_owner_index`` and
    # ``open_project_index``.
    open_sort_key = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    # An own spike of a key-only account, counted in its ``own_spikes`` (store/accounts.py): it is
    # counted gone when deleted or moved by a claim, which removes the mark; no other spike is.
    own_counted = BooleanAttribute(null=True)
    partition_index = PartitionIndex()
    owner_index = OwnerSpikesIndex()
    open_owner_index = OpenOwnerSpikesIndex()
    open_partition_index = OpenPartitionIndex()
    feed_index = FeedIndex()
    id_index = SpikeIdIndex()
    id_owner_index = SpikeIdOwnerIndex()


# --- outbound webhook deliveries ---------------------------------------------------------------

class DueIndex(GlobalSecondaryIndex["Delivery"]):
    """Sparse: only deliveries waiting for an attempt carry ``due``; the worker queries the
    ones whose ``next_attempt_at`` has come."""
    class Meta:
        index_name = "due_index"
        projection = AllProjection()

    due = UnicodeAttribute(hash_key=True)
    next_attempt_at = NumberAttribute(range_key=True)


class ShareDeliveriesIndex(GlobalSecondaryIndex["Delivery"]):
    class Meta:
        index_name = "share_index"
        projection = AllProjection()

    share_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class OwnerDeliveriesIndex(GlobalSecondaryIndex["Delivery"]):
    """An owner's webhook events, also those of shares deleted since (``share_index`` finds only a
    live share's). Sparse (the ``release#``/``pro-features#`` work items carry no ``owner_id``)
    and keys only, so a delivery's attempts, which change no key, write nothing here."""
    class Meta:
        index_name = "owner_index"
        projection = KeysOnlyProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Delivery(_Base):
    """One event for one share's webhook (the outbox): written in the same transaction as
    the change it reports, then attempted by the delivery job until delivered or failed."""

    class Meta(_Base.Meta):
        table_name = "deliveries"

    delivery_id = UnicodeAttribute(hash_key=True)
    share_id = UnicodeAttribute()
    owner_id = UnicodeAttribute(null=True)
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    body = UnicodeAttribute()  # the exact JSON that is signed and sent
    # Where and with which secret, as of the event: used when the share no longer exists.
    url = UnicodeAttribute()
    secret_nonce = UnicodeAttribute()
    status = UnicodeAttribute(default="pending")  # pending | delivered | failed | paused | cancelled
    attempts = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    retry_from = NumberAttribute()  # epoch seconds: retries continue until retry_from + the window
    due = UnicodeAttribute(null=True)
    next_attempt_at = NumberAttribute(null=True)
    last_attempt_at = NumberAttribute(null=True)
    last_status_code = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    delivered_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # TTL: finished deliveries are kept for a while
    due_index = DueIndex()
    share_index = ShareDeliveriesIndex()
    owner_index = OwnerDeliveriesIndex()


# --- ledger ----------------------------------------------------------------------------------

class LedgerOwnerIndex(GlobalSecondaryIndex["LedgerItem"]):
    """The ledger items of an owner that no computed key finds: a Stripe event's pro-features
    checkpoints (``job#pro-features#<user>@<event_at>-…``) and the background exports the owner
    started (``export#<id>``). Sparse: only they carry ``owner_id``, so the counters a post writes
    cost nothing here."""
    class Meta:
        index_name = "owner_index"
        projection = KeysOnlyProjection()

    owner_id = UnicodeAttribute(hash_key=True)


class LedgerItem(_Base):
    """Counters and markers: ``quota#<share>#<period>``, ``usage#<user>#<period>``,
    ``rl#<limit>#<subject>`` (attributes ``w<window>``), ``stripe-event#<id>``, ``job#<name>``,
    ``export#<id>`` (a background export's state), ``exportslot#<subject hash>#<n>`` (one held by
    a running export)."""

    class Meta(_Base.Meta):
        table_name = "ledger"

    pk = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=0)
    expires_at = NumberAttribute(null=True)  # epoch seconds; the table TTL attribute
    state = UnicodeAttribute(null=True)
    detail = JSONAttribute(null=True)
    # ``deletions#shares``: ids of shares whose deletion started and is not finished (atomic
    # ADD/DELETE on a string set; the scheduled job finishes what a request left undone).
    members = UnicodeSetAttribute(null=True)
    # Per-period usage items (``usage#<user>#…``, ``keyusage#<key>#…``): what was charged, in
    # thousandths of a cent, and per key the spikes and shares it created.
    cost = NumberAttribute(null=True)
    spikes = NumberAttribute(null=True)
    shares = NumberAttribute(null=True)
    # Only on a pro-features checkpoint and a background export (written since it was kept): whose it is.
    owner_id = UnicodeAttribute(null=True)
    # Only on a background export (``export#<id>``, store/exports.py): each write of its state
    # is conditioned on ``version`` and counts it up; ``lease_until``: a run holds it till then.
    version = NumberAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    # Only on a slot of running exports (``exportslot#…``, store/export_slots.py): the export holding it.
    holder = UnicodeAttribute(null=True)
    owner_index = LedgerOwnerIndex()


# --- outbox ----------------------------------------------------------------------------------

class OutboxOwnerIndex(GlobalSecondaryIndex["OutboxItem"]):
    """An account's usage events in every queue (pending, refused, held, sent copies). Keys only:
    a lease or an attempt changes no key, so only an event's creation and moves write here."""
    class Meta:
        index_name = "owner_index"
        projection = KeysOnlyProjection()

    user_id = UnicodeAttribute(hash_key=True)


class OutboxItem(_Base):
    """Usage events for Stripe, written in the same transaction as the spike or share they
    bill and deleted once Stripe accepted them. ``queue`` is ``meter#<shard>`` (pending, a few
    shards so no partition runs hot) or ``meter#dead`` (refused by Stripe, kept for review);
    ``event_key`` = ``<ISO time>#<identifier>``, so a queue reads oldest first. ``meter#held``
    holds a presigned upload's share charge until the upload completes (``event_key`` = the
    identifier): never read by the reporting job. ``meter-sent#<shard>`` keeps a copy of each
    event Stripe accepted (``event_key`` = the identifier) for Stripe's 35 days (``expires_at``),
    so an event Stripe reports invalid later can be sent again (services/meter_errors.py)."""

    class Meta(_Base.Meta):
        table_name = "outbox"

    queue = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)
    identifier = UnicodeAttribute()  # Stripe's dedup identifier and our idempotency key
    event_name = UnicodeAttribute()
    user_id = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    value = NumberAttribute(default=1)
    timestamp = NumberAttribute()  # epoch seconds of the usage
    attempts = NumberAttribute(default=0)
    next_attempt_at = NumberAttribute(default=0)
    lease_until = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    # The timestamp the event is sent with (its own, or 34 days ago for an older one), fixed
    # while an attempt is unanswered: Stripe refuses a retry under the same key that differs.
    send_timestamp = NumberAttribute(null=True)
    # When the earliest attempt whose answer we never recorded began (a crash, a timeout, a
    # 5xx): Stripe may hold the event, and deduplicates it for 24 hours only.
    unanswered_since = NumberAttribute(null=True)
    # The customer every unanswered attempt was sent to (names their idempotency key); absent
    # once they went to more than one: then no single refusal shows Stripe billed none of them.
    unanswered_customer = UnicodeAttribute(null=True)
    # How many times an operator requeued it from ``meter#dead`` (tools/usage_events.py): part of
    # its idempotency key, since Stripe answers a key it holds with that key's first answer.
    requeues = NumberAttribute(null=True)
    # Only on a held charge (``meter#held``, store/held_charges.py): what to give back if the
    # presigned upload it bills expires unfinished.
    period = UnicodeAttribute(null=True)
    cost = NumberAttribute(null=True)  # charged to the account's period usage, thousandths of a cent
    key_id = UnicodeAttribute(null=True)
    key_cost = NumberAttribute(null=True)  # charged to the key's period usage (0: counted, not charged)
    # Only on a sent copy (``meter-sent#<shard>``): when Stripe accepted it, and the TTL.
    sent_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # epoch seconds; the table TTL attribute
    owner_index = OutboxOwnerIndex()


ALL_MODELS: List[Type[Model]] = [User, AuthItem, Share, Spike, LedgerItem, ApiKey, Delivery, OutboxItem]
# Each model's Meta.table_name is its logical name until configure_models binds the stage's.
LOGICAL_NAMES = {model: model.Meta.table_name for model in ALL_MODELS}


def configure_models(settings: Settings, models: Iterable[Type[Model]] = ALL_MODELS) -> None:
    """Bind table names and endpoint from settings; drop cached connections."""
    host = settings.dynamodb_endpoint_url or settings.aws_endpoint_url
    for model in models:
        name = table_name(settings, LOGICAL_NAMES[model])
        if (model.Meta.table_name, model.Meta.region, getattr(model.Meta, "host", None)) == (name, settings.region, host):
            continue  # keep the warm connection: building a botocore client costs ~100 ms
        model.Meta.table_name = name
        model.Meta.region = settings.region
        model.Meta.host = host
        model._connection = None

