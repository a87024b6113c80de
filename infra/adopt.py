"""``make deploy IMPORT_DATA=yes``: a new stack adopts the tables and the bucket an earlier stack
of the stage kept (``make destroy`` without ``DELETE_DATA``), by a CloudFormation import.

CloudFormation creates no table or bucket whose name exists, so a stage whose data was kept could
not be deployed again. An import change set takes existing resources into a stack as they are: it
writes nothing into them, and one that fails leaves them where they were (each is retained). The
deploy then updates that stack with the whole template, as any other update.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Optional

IDENTIFIERS = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName"}
CHANGE_SET = "spikes-import-kept-data"


def kept_resources(template: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The template's tables and bucket (logical id -> resource): what a deleted stack keeps."""
    return {logical: resource for logical, resource in template["Resources"].items()
            if resource["Type"] in IDENTIFIERS}


def resources_to_import(template: Dict[str, Any], present: Iterable[str], bucket: str) -> List[Dict[str, Any]]:
    """Those of ``present`` (table and bucket names) the template declares, as an import names
    them; a table a newer version added is not there yet, and the update creates it."""
    present = set(present)
    found = []
    for logical, resource in sorted(kept_resources(template).items()):
        identifier = IDENTIFIERS[resource["Type"]]
        name = resource["Properties"]["TableName"] if identifier == "TableName" else bucket
        if name in present:
            found.append({"ResourceType": resource["Type"], "LogicalResourceId": logical,
                          "ResourceIdentifier": {identifier: name}})
    return found


def import_template(template: Dict[str, Any], importing: Iterable[Dict[str, Any]],
                    kept_as: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The import's template: the resources imported as the whole template declares them (an
    import may add nothing else), each table as it really is where ``kept_as`` (logical id ->
    ``table_as_kept``) says, and the template's parameters."""
    resources = {**kept_resources(template), **(kept_as or {})}
    return {"AWSTemplateFormatVersion": template.get("AWSTemplateFormatVersion", "2010-09-09"),
            "Description": "Spikes: a stage's kept tables and bucket, imported (make deploy IMPORT_DATA=yes)",
            "Parameters": template["Parameters"],
            "Resources": {item["LogicalResourceId"]: resources[item["LogicalResourceId"]] for item in importing}}


def table_as_kept(resource: Dict[str, Any], table: Dict[str, Any], ttl_enabled: bool) -> Dict[str, Any]:
    """The template's table as the kept one really is (``DescribeTable``'s ``Table``, and whether
    its TTL is on). CloudFormation takes an import's template as the truth and the update that
    follows changes only what differs from it: a table kept by an older version, declared with
    this version's indexes, would never get the ones it lacks (every query on them failing)."""
    properties = copy.deepcopy(resource["Properties"])
    properties["AttributeDefinitions"] = sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"])
    indexes = [{"IndexName": index["IndexName"], "Projection": index["Projection"],
                "KeySchema": sorted(index["KeySchema"], key=lambda key: key["KeyType"] != "HASH")}
               for index in table.get("GlobalSecondaryIndexes", [])]
    properties.pop("GlobalSecondaryIndexes", None)
    if indexes:
        properties["GlobalSecondaryIndexes"] = sorted(indexes, key=lambda index: index["IndexName"])
    if not ttl_enabled:
        properties.pop("TimeToLiveSpecification", None)
    return {**resource, "Properties": properties}
