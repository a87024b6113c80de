"""The keys a key made before ``made_keys`` was kept, found on its account's owner index a bounded
part a request (docs/security.md 72, 348).

A key written before ``made_keys_complete`` may have made keys it does not name; only the owner
index's ``created_by`` says so. That index holds the account's revoked keys too (kept for good,
30 made an hour), so a year of rotations is some 260,000 items, which one request cannot read
(334's count had the same trouble). A revocation reads at most ``READ_ITEMS`` of them, from where
the request before stopped: kept on the key (``made_keys_read_to``, with the partition it was
read in), the ids found added to its ``made_keys``. Once the index is read to its end the key is
marked ``made_keys_complete`` and never looked up there again. Only a revoked key is looked up:
its ``made_keys`` no longer grows (a creation needs its maker unrevoked), so what is found
stays true.
"""
from __future__ import annotations

import json
from typing import Set

from chalicelib.store import rows
from chalicelib.store.models import ApiKey
from chalicelib.store.transactions import update_if

READ_ITEMS = 10_000  # index items one request reads at most, over every key of the tree it revokes
READ_QUERIES = 20
PAGE = 1000


class Looking:
    """One request's look-ups: what it read so far, and whether a key's look was left unfinished."""

    def __init__(self) -> None:
        self.spent = {"items": 0, "queries": 0}
        self.unfinished = False

    def made_by(self, key: ApiKey) -> Set[str]:
        """The ids of keys ``key`` (revoked, without ``made_keys_complete``) made that the part of
        the owner index read now names, those read by the requests before included
        (``made_keys``); ``unfinished`` once the index is left to read for the next request."""
        items_left = READ_ITEMS - self.spent["items"]
        queries_left = READ_QUERIES - self.spent["queries"]
        if items_left <= 0 or queries_left <= 0:
            self.unfinished = True
            return set(key.made_keys or ())
        read_to = json.loads(key.made_keys_read_to) if key.made_keys_read_to else {}
        # A position read in another partition (a claim moved the key since) starts over in its own.
        start = read_to.get("key") if read_to.get("user_id") == key.user_id else None
        found, ended = rows.query_index(ApiKey, ApiKey.owner_index, key.user_id, limit=READ_ITEMS,
                                        filter_condition=ApiKey.created_by == f"key:{key.key_id}", start_key=start,
                                        page_size=min(PAGE, items_left), projection=["key_id", "user_id", "created_at"],
                                        read_limit=rows.ReadLimit(items_left, queries_left), spent=self.spent)
        made = {row.key_id for row in found}
        actions = [ApiKey.made_keys.add(made)] if made else []
        if ended is None:
            actions += [ApiKey.made_keys_complete.set(True), ApiKey.made_keys_read_to.remove()]
        else:
            self.unfinished = True
            actions.append(ApiKey.made_keys_read_to.set(json.dumps({"user_id": key.user_id, "key": ended})))
        as_read = (ApiKey.made_keys_read_to == key.made_keys_read_to) if key.made_keys_read_to \
            else ApiKey.made_keys_read_to.does_not_exist()
        # Refused: another request went on from here first; the next one goes on from there.
        update_if(ApiKey(key.key_id), actions, ApiKey.revoked_at.exists() & as_read
                  & (ApiKey.made_keys_complete.does_not_exist() | (ApiKey.made_keys_complete == False)))  # noqa: E712
        return made | set(key.made_keys or ())
