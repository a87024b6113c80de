"""bench/capacity.py's figures: DynamoDB Local charges a BatchGetItem only for the items it
finds, DynamoDB every key asked (1 RCU strongly consistent, 0.5 eventually), so the bench's
capacity figures (docs/performance.md) give both."""
from __future__ import annotations

from bench.capacity import ITEMS_FOUND, KEYS_ASKED, Meter, batch_get_figures, read_units, write_units


def _batch_get(meter: Meter, request: dict, response: dict) -> None:
    meter.calls["BatchGetItem"] += 1
    meter.record("BatchGetItem", {"RequestItems": request}, response)


def test_a_batch_get_is_charged_on_dynamodb_for_every_key_asked_found_or_not():
    meter = Meter()
    request = {"shares": {"Keys": [{"pk": {"S": "share#a"}}], "ConsistentRead": True},
               "ledger": {"Keys": [{"pk": {"S": f"quota#a#{n}"}} for n in range(4)], "ConsistentRead": True},
               "listing": {"Keys": [{"pk": {"S": f"total#{n}"}} for n in range(3)]}}
    response = {"Responses": {"shares": [{"pk": {"S": "share#a"}}], "listing": [{"pk": {"S": "total#0"}}]},
                # DynamoDB Local: the two items found, 1 + 0.5
                "ConsumedCapacity": [{"TableName": "shares", "CapacityUnits": 1.0},
                                     {"TableName": "listing", "CapacityUnits": 0.5}]}
    _batch_get(meter, request, response)
    # Absent: 4 keys read strongly consistently (1 each), 2 eventually (0.5 each).
    assert read_units(meter.units) == (1.5, 1.5 + 4 + 1)
    assert (meter.units[KEYS_ASKED], meter.units[ITEMS_FOUND]) == (8, 2)
    assert batch_get_figures(meter.units) == "BatchGetItem keys asked 8, found 2"


def test_keys_left_unprocessed_are_not_charged_until_asked_again():
    meter = Meter()
    keys = [{"pk": {"S": f"k{n}"}} for n in range(3)]
    _batch_get(meter, {"ledger": {"Keys": keys, "ConsistentRead": True}},
               {"Responses": {"ledger": [keys[0]]}, "UnprocessedKeys": {"ledger": {"Keys": keys[2:]}},
                "ConsumedCapacity": [{"TableName": "ledger", "CapacityUnits": 1.0}]})
    _batch_get(meter, {"ledger": {"Keys": keys[2:], "ConsistentRead": True}},
               {"Responses": {"ledger": []}, "ConsumedCapacity": [{"TableName": "ledger", "CapacityUnits": 0.0}]})
    assert read_units(meter.units) == (1.0, 3.0)
    assert meter.units[KEYS_ASKED] == 3


def test_reads_and_writes_are_told_apart_with_the_indexes_units():
    meter = Meter("INDEXES")
    meter.record("TransactWriteItems", {}, {"ConsumedCapacity": [
        {"TableName": "spikes", "CapacityUnits": 10.0, "GlobalSecondaryIndexes": {"owner_index": {"CapacityUnits": 4.0}}},
        {"TableName": "ledger", "CapacityUnits": 3.0}]})
    meter.record("UpdateItem", {}, {"ConsumedCapacity": {"TableName": "ledger", "CapacityUnits": 1.0}})
    meter.record("GetItem", {}, {"ConsumedCapacity": {"TableName": "shares", "CapacityUnits": 0.5}})
    meter.record("Query", {}, {"ConsumedCapacity": {"TableName": "spikes", "CapacityUnits": 4.0,
                                                    "GlobalSecondaryIndexes": {"project_index": {"CapacityUnits": 4.0}}}})
    assert read_units(meter.units) == (4.5, 4.5)  # no BatchGetItem: both figures are DynamoDB Local's
    assert write_units(meter.units) == 14.0
    assert meter.units["indexes"] == 4.0  # of the writes: the Query's index units are read units
