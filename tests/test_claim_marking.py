"""A claim's marking (``merged_into``) is written once: a retry keeps the first value and a
different target is refused, on moto and DynamoDB Local."""
from __future__ import annotations

from pynamodb.connection.table import TableConnection

from chalicelib.store import accounts as account_store
from chalicelib.store import claim_marks, transactions
from chalicelib.store.models import User
from tests.conftest import call
from tests.factories import make_user


def test_a_retried_marking_keeps_the_first_value_and_refuses_another_target(backend_client, monkeypatch):
    """A call sent again re-marked the account it had read marked already: one more UpdateItem
    writing ``merged_into`` over itself, for every retry of the claim."""
    status, created, _ = call(backend_client, "POST", "/auth/api-key", {"name": "agent"})
    assert status == 201, created
    account_id = created["account_id"]
    person_a, person_b = (make_user(f"{name}@example.com").user_id for name in ("a", "b"))
    stale = [account_store.get(account_id, consistent=True) for _ in range(2)]  # read before any marking
    writes, updating, committing = [], TableConnection.update_item, transactions.run

    def update_item(self, *args, **kwargs):
        if self.table_name == User.Meta.table_name:
            writes.append(args[0] if args else kwargs.get("hash_key"))
        return updating(self, *args, **kwargs)
    monkeypatch.setattr(TableConnection, "update_item", update_item)
    monkeypatch.setattr(transactions, "run", lambda build, **options: writes.append(account_id) or committing(build, **options))
    assert account_store.mark_merged(account_store.get(account_id, consistent=True), person_a)
    assert writes == [account_id]
    assert account_store.mark_merged(account_store.get(account_id, consistent=True), person_a)
    assert writes == [account_id]  # read marked: nothing written again
    assert not account_store.mark_merged(account_store.get(account_id, consistent=True), person_b)
    # Read before the marking, a retry and another claimer each write only if the stored value allows.
    assert account_store.mark_merged(stale[0], person_a)
    assert not account_store.mark_merged(stale[1], person_b)
    assert account_store.get(account_id, consistent=True).merged_into == person_a
    assert claim_marks.state(person_a) == claim_marks.ClaimState(merged=False, moving=True, begun=1)  # begun once
