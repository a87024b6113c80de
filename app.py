"""The Spikes backend on AWS Chalice: blueprints, middleware, schedule and webhook routes.
Everything else lives in chalicelib/ (api -> services -> store)."""
from chalice import Chalice

from chalicelib.api import auth, billing, fallback, serving, shares, site, spikes
from chalicelib.api.routing import http_middleware

app = Chalice(app_name="spikes")
app.api.binary_types.extend(["multipart/form-data", "application/octet-stream", "image/*", "font/*"])
app.register_middleware(http_middleware, "http")

app.register_blueprint(site.bp)
app.register_blueprint(auth.bp)
app.register_blueprint(spikes.bp)
app.register_blueprint(shares.bp)
app.register_blueprint(serving.bp)
app.register_blueprint(billing.bp)

# --- Stripe webhook and the scheduled quota reset (billing) ---------------------------------

# --- last: unknown routes and wrong methods answer in the envelope --------------------------
app.register_blueprint(fallback.bp)
fallback.add_method_fallbacks(app)
