"""The body of POST /spikes (the widget, the CLI's push) read into what to record."""
from __future__ import annotations

from typing import Optional

from chalicelib.api import inputs
from chalicelib.errors import ValidationFailed
from chalicelib.lazy import lazy_import

schemas = lazy_import("chalicelib.api.schemas")
spike_posts = lazy_import("chalicelib.services.spike_posts")
spikes = lazy_import("chalicelib.services.spikes")


def new_spike(data: dict) -> spike_posts.NewSpike:
    """What a POST /spikes body asks to record (the widget's, the CLI's push): every field's
    problem in one 400, a missing project key among them."""
    from pydantic import ValidationError
    details = []
    body: Optional[schemas.SpikeIn] = None
    try:
        body = schemas.SpikeIn.model_validate(data)
    except ValidationError as exc:
        details = inputs.validation_details(exc)
    if not (data.get("projectKey") or data.get("project")):
        details.append({"field": "projectKey", "message": "projectKey (or project) is required", "code": "MISSING_FIELD"})
    if details or body is None:
        raise ValidationFailed(details=details)
    anonymous = spikes.ANONYMOUS
    reviewer = dict(anonymous)
    if body.reviewer is not None:
        reviewer = {"id": body.reviewer.id or anonymous["id"], "name": body.reviewer.name or anonymous["name"]}
        if body.reviewer.email:
            reviewer["email"] = body.reviewer.email
    elif body.reviewerName or body.reviewerEmail:
        reviewer = {"id": anonymous["id"], "name": body.reviewerName or anonymous["name"]}
        if body.reviewerEmail:
            reviewer["email"] = body.reviewerEmail
    box = body.boundingBox
    return spike_posts.NewSpike(
        type=body.type, project_key=(body.projectKey or body.project), client_id=body.id,
        page=body.page or "", url=body.url or "", comments=body.comments or "", timestamp=body.timestamp or "",
        rating=body.rating, reviewer=reviewer, selector=body.selector, xpath=body.xpath,
        element_text=body.elementText,
        # Whole numbers, as the widgets send them. The box's x and y keep their sign: upstream's
        # widget sends an element's document position, negative left of or above the page's
        # origin, and the CLI reads them as f64; only a size cannot be negative.
        bounding_box=({"x": round(box.x), "y": round(box.y), "width": max(0, round(box.width)),
                       "height": max(0, round(box.height))} if box else None),
        viewport={"width": round(body.viewport.width), "height": round(body.viewport.height)} if body.viewport else None,
        resolved=bool(body.resolved), resolved_at=body.resolvedAt or None,
    )
