"""The Spikes backend on AWS Chalice: blueprints, middleware, schedule and webhook routes.
Everything else lives in chalicelib/ (api -> services -> store)."""
from chalice import Chalice

from chalicelib.api import auth, fallback, site
from chalicelib.api.routing import http_middleware

app = Chalice(app_name="spikes")
app.api.binary_types.extend(["multipart/form-data", "application/octet-stream", "image/*", "font/*"])
app.register_middleware(http_middleware, "http")

app.register_blueprint(site.bp)
app.register_blueprint(auth.bp)
app.register_blueprint(fallback.bp)
fallback.add_method_fallbacks(app)
