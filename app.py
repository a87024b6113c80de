"""The Spikes backend on AWS Chalice: the app, its middleware and its blueprints (routes,
inbound webhooks, scheduled jobs). Everything else lives in chalicelib/ (api -> services ->
store); see docs/architecture.md."""
from chalice import Chalice

from chalicelib.api import (auth, billing, dashboard, exports, fallback, jobs, keys, outbound_webhooks, reference,
                            routing, serving, shares, site, spikes, versioning, webhooks)

app = Chalice(app_name="spikes")
# Chalice matches binary types exactly (no wildcards): list what shares upload and serve.
app.api.binary_types.extend([
    "multipart/form-data", "font/woff", "font/woff2", "font/ttf", "font/otf", "application/font-woff",
    "image/webp", "image/avif", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp", "image/tiff",
    "video/mp4", "application/pdf", "application/wasm",
])
app.register_middleware(routing.http_middleware, "http")

app.register_blueprint(site.bp)
app.register_blueprint(reference.bp)
app.register_blueprint(auth.bp)
app.register_blueprint(keys.bp)
app.register_blueprint(spikes.bp)
app.register_blueprint(exports.bp)
app.register_blueprint(shares.bp)
app.register_blueprint(serving.bp)
app.register_blueprint(billing.bp)
app.register_blueprint(outbound_webhooks.bp)
app.register_blueprint(webhooks.bp)
app.register_blueprint(jobs.bp)

# Every route so far again under /v1 (the stable versioned paths).
versioning.add_versioned_paths(app)

# The dashboard is a page for people (like share pages), not an API path: not versioned.
app.register_blueprint(dashboard.bp)

# --- last: unknown routes and wrong methods answer in the envelope --------------------------
app.register_blueprint(fallback.bp)
fallback.add_method_fallbacks(app)
