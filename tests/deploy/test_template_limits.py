"""The packaged stage fits CloudFormation's and API Gateway's quotas, with room to grow: the
API's definition lists every method of every path (api/fallback.py answers them all), so each
route and its /v1 copy add two paths of seven operations to the template (docs/deploy.md,
"Template size")."""
from __future__ import annotations

import json
from pathlib import Path

from infra import package

# Growth the template must still have room for: 20 more routes, each with its /v1 copy.
ROOM_FOR_PATHS = 40
API_GATEWAY_MAX_RESOURCES = 300  # resources (path segments) per REST API, API Gateway's default quota
STACK_MAX_OUTPUTS = STACK_MAX_PARAMETERS = 200


def largest_path_bytes(template: dict) -> int:
    paths = template["Resources"]["RestAPI"]["Properties"]["Body"]["paths"]
    return max(len(json.dumps({path: item}, separators=(",", ":"))) for path, item in paths.items())


def test_the_deployed_template_fits_cloudformation_with_room_for_more_routes(built):
    size = (Path(built["dir"]) / "template.json").stat().st_size  # the bytes make deploy uploads
    per_path = largest_path_bytes(built["template"])
    assert size + ROOM_FOR_PATHS * per_path <= package.TEMPLATE_S3_MAX_BYTES, (
        f"template.json is {size:,} bytes and a path costs up to {per_path:,}: {ROOM_FOR_PATHS} more paths would pass "
        f"CloudFormation's {package.TEMPLATE_S3_MAX_BYTES:,}-byte limit (docs/deploy.md, 'Template size')")


def test_the_stack_fits_cloudformations_and_api_gateways_counts(built):
    template = built["template"]
    assert len(template["Resources"]) <= package.STACK_MAX_RESOURCES - 50  # room for a few more functions' worth
    assert len(template["Outputs"]) <= STACK_MAX_OUTPUTS and len(template["Parameters"]) <= STACK_MAX_PARAMETERS
    paths = template["Resources"]["RestAPI"]["Properties"]["Body"]["paths"]
    segments = {tuple(path.strip("/").split("/")[:depth]) for path in paths
                for depth in range(1, len(path.strip("/").split("/")) + 1)}
    assert len(segments) + 1 + ROOM_FOR_PATHS <= API_GATEWAY_MAX_RESOURCES  # + 1: the root resource
