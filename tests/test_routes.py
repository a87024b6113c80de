"""The route table must deploy to API Gateway as it is."""
from __future__ import annotations

from collections import defaultdict

from chalice.deploy.validate import validate_routes


def test_routes_pass_chalice_validation():
    from app import app
    validate_routes(app.routes)


def test_sibling_path_variables_share_one_name():
    """API Gateway allows one variable child per resource ('/shares/{key}' and
    '/shares/{share_id}/complete' cannot both exist)."""
    from app import app
    variables = defaultdict(set)
    for path in app.routes:
        parts = path.strip("/").split("/")
        for depth, part in enumerate(parts):
            if part.startswith("{"):
                variables["/".join(parts[:depth])].add(part)
    clashes = {parent: names for parent, names in variables.items() if len(names) > 1}
    assert clashes == {}


def test_every_route_answers_every_method():
    from app import app
    for path, views in app.routes.items():
        assert {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} <= set(views), path
