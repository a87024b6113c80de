"""``make deploy`` adds a version's new table indexes one per table per update, by itself.

CloudFormation refuses an update that creates or deletes more than one global secondary index
of a table ("Cannot perform more than one GSI creation or deletion in a single update"), counted
against the template deployed, and does not wait for a new index to be built (DynamoDB allows
one index created or deleted at a time per table). A stack several versions behind could miss
two indexes of one table. Before the update to the whole template, the deploy updates the stack
with its own deployed template plus one index change per table, as many times as needed, waiting
after each until DynamoDB has built the index; the last change of each table goes with the
update to the whole template. Each step is computed from what is deployed, so a staged deploy
that was interrupted continues where it stopped when run again, and one with nothing to stage
does nothing here.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from typing import Any, Dict, List, Optional, Tuple

TABLE = "AWS::DynamoDB::Table"


def table_indexes(resource: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """A table resource's indexes by name, each normalised for comparison (hash key first,
    projected attributes sorted)."""
    found = {}
    for index in resource.get("Properties", {}).get("GlobalSecondaryIndexes", []):
        projection = dict(index["Projection"])
        if "NonKeyAttributes" in projection:
            projection["NonKeyAttributes"] = sorted(projection["NonKeyAttributes"])
        found[index["IndexName"]] = {**index, "Projection": projection,
                                     "KeySchema": sorted(index["KeySchema"], key=lambda key: key["KeyType"] != "HASH")}
    return found


def index_changes(deployed: Dict[str, Any], target: Dict[str, Any]) -> Dict[str, Tuple[List[str], List[str]]]:
    """For each table both templates hold, the indexes the target adds and those it removes (an
    index redefined under the same name is both: DynamoDB changes no index in place)."""
    changes = {}
    for logical, resource in target["Resources"].items():
        old = deployed["Resources"].get(logical)
        if resource["Type"] != TABLE or not old or old["Type"] != TABLE:
            continue
        have, want = table_indexes(old), table_indexes(resource)
        redefined = sorted(name for name in set(have) & set(want) if have[name] != want[name])
        added = sorted(set(want) - set(have)) + redefined
        removed = sorted(set(have) - set(want)) + redefined
        if added or removed:
            changes[logical] = (added, removed)
    return changes


def needs_steps(changes: Dict[str, Tuple[List[str], List[str]]]) -> bool:
    return any(len(added) + len(removed) > 1 for added, removed in changes.values())


def next_step(deployed: Dict[str, Any], target: Dict[str, Any]) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    """The deployed template with one index change more on each table that still lacks more
    than one (an index of a new name added first, else one removed), and what it changes; None
    when the target itself is one change per table away."""
    changes = index_changes(deployed, target)
    if not needs_steps(changes):
        return None
    step = copy.deepcopy(deployed)
    done = []
    for logical, (added, removed) in sorted(changes.items()):
        if len(added) + len(removed) < 2:
            continue  # left to the update to the whole template
        have = table_indexes(deployed["Resources"][logical])
        want = table_indexes(target["Resources"][logical])
        properties = step["Resources"][logical]["Properties"]
        fresh = [name for name in added if name not in have]
        if fresh:
            have[fresh[0]] = want[fresh[0]]
            done.append(f"add {fresh[0]} to {properties['TableName']}")
        else:
            del have[removed[0]]
            done.append(f"remove {removed[0]} from {properties['TableName']}")
        properties["GlobalSecondaryIndexes"] = [have[name] for name in sorted(have)]
        properties["AttributeDefinitions"] = key_attributes(
            deployed["Resources"][logical], target["Resources"][logical], properties)
        if not have:
            del properties["GlobalSecondaryIndexes"]
    return step, done


def key_attributes(old: Dict[str, Any], new: Dict[str, Any], properties: Dict[str, Any]) -> List[Dict[str, str]]:
    """The attribute definitions of the keys ``properties`` uses (the table's and its indexes'):
    DynamoDB refuses one no key uses."""
    known = {a["AttributeName"]: a for a in old["Properties"]["AttributeDefinitions"]}
    known.update({a["AttributeName"]: a for a in new["Properties"]["AttributeDefinitions"]})
    used = {key["AttributeName"] for key in properties["KeySchema"]}
    for index in properties.get("GlobalSecondaryIndexes", []):
        used.update(key["AttributeName"] for key in index["KeySchema"])
    return [known[name] for name in sorted(used)]


def template_body(value: Any) -> Dict[str, Any]:
    """GetTemplate's body: botocore decodes a JSON one itself, else it is the text."""
    return json.loads(value) if isinstance(value, str) else value


def add_indexes_in_steps(deployer: Any, stage: str, stack_name: str, target: Dict[str, Any], bucket: str,
                         attempts: int) -> None:
    """Update the stack until the whole ``target`` is one index change per table away, each
    update waited for and its indexes built; then wait for those of the tables the update to
    ``target`` changes (one may still be building: CloudFormation does not wait, and an earlier
    deploy may have been interrupted)."""
    total = sum(len(added) + len(removed) for added, removed in
                index_changes(deployed_template(deployer, stack_name), target).values())
    for number in range(1, total + 1):  # each step makes one change at least
        deployed = deployed_template(deployer, stack_name)
        step = next_step(deployed, target)
        if step is None:
            break
        body, done = step
        changed = [body["Resources"][logical]["Properties"]["TableName"] for logical in index_changes(deployed, body)]
        deployer.say(f"CloudFormation takes one index change per table per update: step {number} before the whole "
                     f"template, {'; '.join(done)} ...")
        wait_for_indexes(deployer, changed, attempts)
        data = json.dumps(body, separators=(",", ":")).encode()
        key = f"{stage}/template-step-{hashlib.sha256(data).hexdigest()[:20]}.json"
        deployer.s3.put_object(Bucket=bucket, Key=key, Body=data)
        # Only the indexes change: the code and every option stay as deployed.
        kept = [{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                for p in deployer.describe(stage).get("Parameters", [])
                if p["ParameterKey"] in body.get("Parameters", {})]
        deployer._create_or_update(stage, f"https://{bucket}.s3.{deployer.region}.amazonaws.com/{key}", kept,
                                   update=True)
        wait_for_indexes(deployer, changed, attempts)
    deployed = deployed_template(deployer, stack_name)
    wait_for_indexes(deployer, [target["Resources"][logical]["Properties"]["TableName"]
                                for logical in index_changes(deployed, target)], attempts)


def deployed_template(deployer: Any, stack_name: str) -> Dict[str, Any]:
    return template_body(deployer.cfn.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"])


def wait_for_indexes(deployer: Any, tables: List[str], attempts: int, stop: bool = True) -> bool:
    """Until each table and every index it has are ACTIVE: CloudFormation finishes an update
    while DynamoDB still builds the index it added, and a table takes no other index change
    meanwhile. Bounded; a deploy stopped here continues when run again. Without ``stop``, says
    so and answers False instead."""
    dynamodb = deployer.session.client("dynamodb", region_name=deployer.region)
    for table in sorted(set(tables)):
        for _ in range(attempts):
            described = dynamodb.describe_table(TableName=table)["Table"]
            building = sorted(index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])
                              if index.get("IndexStatus", "ACTIVE") != "ACTIVE")
            if described["TableStatus"] == "ACTIVE" and not building:
                break
            deployer.say(f"  waiting for table {table} ({described['TableStatus']}; "
                         f"{', '.join(building) or 'no index'} building from the stored items) ...")
            time.sleep(deployer.poll_seconds)
        else:
            if not stop:
                deployer.say(f"  table {table} is still building an index: listings that need it filter as "
                             "before until a later deploy (or local start) finds it built.")
                return False
            raise SystemExit(f"Table {table} is still building an index. The deploy stopped before its next step; run "
                             "`make deploy` again later: it continues from there (docs/deploy.md, 'Upgrading').")
    return True
