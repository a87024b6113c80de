"""The Spikes backend on AWS Chalice: blueprints, middleware, schedule and webhook routes.
Everything else lives in chalicelib/ (api -> services -> store)."""
from chalice import Chalice, Cron

from chalicelib.api import (auth, billing, dashboard, fallback, keys, reference, routing, serving, shares, site, spikes,
                            versioning)

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
app.register_blueprint(shares.bp)
app.register_blueprint(serving.bp)
app.register_blueprint(billing.bp)

# --- Stripe webhook and the scheduled quota reset (billing) ---------------------------------

@app.route("/webhooks/stripe", methods=["POST"], content_types=["*/*"])
def stripe_webhook():
    return routing.handle(lambda: billing.stripe_webhook(app.current_request))


# Every 15 minutes: a finished period is one GetItem; an unfinished one continues from its
# checkpoint (see chalicelib/services/quota_reset.py).
@app.schedule(Cron("0/15", "*", "*", "*", "?", "*"), name="quota_reset")
def quota_reset(event):
    return billing.scheduled_quota_reset(event)


# Every route so far again under /v1 (the stable versioned paths).
versioning.add_versioned_paths(app)

# The dashboard is a page for people (like share pages), not an API path: not versioned.
app.register_blueprint(dashboard.bp)

# --- last: unknown routes and wrong methods answer in the envelope --------------------------
app.register_blueprint(fallback.bp)
fallback.add_method_fallbacks(app)
