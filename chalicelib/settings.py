"""One typed settings object, read lazily from the environment and cached.

Nothing reads ``os.environ`` at import time: under ``chalice local`` and the test client the
stage's environment variables are only patched in while a request runs.
"""
from __future__ import annotations

import functools
import os
from typing import Literal, Optional

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from chalicelib.limit_settings import LimitSettings

DEV_SECRET = "local-development-secret-do-not-use-in-aws"
LOCAL_STAGES = {"local", "test"}
# The API function's timeout (infra/stack.py gives it; API Gateway gives up at 29 s): an export
# that cannot finish in it says so (errors.ExportTooSlow).
API_TIMEOUT_SECONDS = 25


class Settings(LimitSettings):
    """Every setting: those below, and the limits (rates, keys, tiers, sizes) it inherits from
    chalicelib/limit_settings.py."""
    model_config = SettingsConfigDict(env_prefix="SPIKES_", extra="ignore")

    stage: str = "local"
    region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    # Points every AWS client at an emulator (moto server, DynamoDB Local). None in AWS.
    aws_endpoint_url: Optional[str] = None
    dynamodb_endpoint_url: Optional[str] = None
    table_prefix: Optional[str] = None
    bucket: Optional[str] = None

    # Admin token of the contract (`?token=<SPIKES_TOKEN>`).
    token: Optional[SecretStr] = None
    # Signs cursors and share-password cookies. Must be set outside local stages.
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    # Where links point (magic links, share URLs). Without it: the API Gateway domain of the
    # request; never the Host header. Required outside local stages unless API Gateway gives one.
    public_base_url: Optional[str] = None

    mail_mode: Literal["console", "ses"] = "console"
    mail_sender: str = "Spikes <no-reply@spikes.local>"
    # SES configuration set tagged on every mail: the deploy routes its bounces and complaints
    # to a log group (/spikes/<stage>/mail-events).
    mail_configuration_set: Optional[str] = None

    # A session (bearer token) unused this long expires; using it pushes the expiry out again.
    session_idle_days: int = Field(default=90, ge=1, le=3650)
    # However much it is used, a session ends this long after its sign-in (a rotation keeps the
    # sign-in's time): a stolen token dies then too (docs/security.md, 240).
    session_max_days: int = Field(default=30, ge=1, le=3650)
    login_token_ttl_seconds: int = 15 * 60
    # The CLI polls expires_in / interval times (docs/clients.md): both bounded so that is >= 1.
    device_code_ttl_seconds: int = Field(default=10 * 60, ge=60, le=24 * 3600)
    device_poll_interval_seconds: int = Field(default=5, ge=1, le=60)

    # A share's unlock proofs are renewed while used, but never past this many hours after the
    # password was given: a leaked proof stops working then (docs/security.md, 165).
    share_unlock_max_hours: int = Field(default=24, ge=1, le=24 * 30)

    # API keys. Self-signup (POST /auth/api-key without credentials creates a key-only account):
    # None = on in the local stages, off in AWS stages (see docs/agents.md).
    agent_signup: Optional[bool] = None
    # last_used_at is written at most once per key per this many seconds.
    key_last_used_resolution_seconds: int = 300

    stripe_secret_key: Optional[SecretStr] = None
    stripe_webhook_secret: Optional[SecretStr] = None
    # The signing secret of the Stripe event destination (thin events) that reports meter events
    # Stripe found invalid after accepting them (POST /webhooks/stripe/meter-errors).
    stripe_event_destination_secret: Optional[SecretStr] = None
    stripe_price_id: Optional[str] = None
    # Agent tier: two metered prices, each on a Billing Meter fed by the meter event named here.
    # The per-unit amounts (agent_price_per_*_cents, limit_settings.py) must match these prices
    # (they drive caps and /usage costs).
    stripe_agent_spike_price_id: Optional[str] = None
    stripe_agent_share_price_id: Optional[str] = None
    stripe_spike_meter_event: str = "spikes_spike_stored"
    stripe_share_meter_event: str = "spikes_share_created"
    stripe_api_base: Optional[str] = None
    billing_success_url: Optional[str] = None
    billing_cancel_url: Optional[str] = None
    payment_grace_days: int = 7
    upgrade_url: Optional[str] = None
    # Where the Customer Portal sends the user back (default: the site's origin).
    billing_return_url: Optional[str] = None
    # A checkout makes up to two Stripe calls; both, retries and backoff included, fit inside the
    # API function's 25 s timeout (API Gateway gives up at 29 s).
    stripe_max_network_retries: int = 1
    stripe_timeout_seconds: float = 5.0
    # The scheduled quota reset: users per page, and the time it leaves before the Lambda
    # timeout when deciding whether to start another page (it checkpoints after each page).
    job_page_size: int = 100
    job_time_reserve_ms: int = 10_000
    # Pages of an owner's shares (``job_page_size`` each) a Stripe webhook locks or reopens itself;
    # the quota reset does the rest (API Gateway gives up on the webhook at 29 s).
    stripe_event_share_pages: int = 2

    # Outbound webhooks: retried with backoff and jitter for this long, then failed (and the
    # share's webhook paused); a rotated secret keeps signing for the grace period.
    webhook_retry_window_seconds: int = 24 * 60 * 60
    webhook_first_retry_seconds: int = 30
    webhook_max_retry_delay_seconds: int = 2 * 60 * 60
    webhook_secret_grace_seconds: int = 24 * 60 * 60
    webhook_timeout_seconds: float = 10.0
    webhook_max_response_bytes: int = 16 * 1024
    webhook_max_redirects: int = 0
    # The horizon: an event not delivered within this long of being recorded is never sent (it
    # would be stale; cancelled instead), and its TTL counts from it. Keep the retry window well under it.
    webhook_max_event_age_seconds: int = Field(default=7 * 24 * 60 * 60, ge=60)
    # Tests and local development only (refused in AWS stages): a receiver on loopback, over http.
    webhook_allow_loopback: bool = False
    # The local server's delivery loop: seconds between passes.
    webhook_local_interval_seconds: float = 2.0
    # The local server's other scheduled jobs (quota reset, share clean-up, usage report; every
    # 5-15 minutes in AWS): seconds between passes.
    local_jobs_interval_seconds: float = 60.0

    log_level: str = "INFO"
    @model_validator(mode="after")
    def _refuse_dev_secret_in_aws(self) -> "Settings":
        if not self.local_stage and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("SPIKES_SECRET_KEY must be set outside the local stages")
        if not self.local_stage and self.webhook_allow_loopback:
            raise ValueError("SPIKES_WEBHOOK_ALLOW_LOOPBACK is for tests and local development only")
        return self

    @property
    def local_stage(self) -> bool:
        """``make dev`` or the tests: no AWS account behind the server."""
        return self.stage in LOCAL_STAGES

    @property
    def resource_prefix(self) -> str:
        return self.table_prefix if self.table_prefix is not None else f"spikes-{self.stage}-"

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"{self.resource_prefix}files"

    @property
    def agent_tier_configured(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_agent_spike_price_id and self.stripe_agent_share_price_id)

    @property
    def agent_signup_enabled(self) -> bool:
        return self.local_stage if self.agent_signup is None else self.agent_signup

    @property
    def admin_token(self) -> Optional[str]:
        return self.token.get_secret_value() if self.token else None

    @property
    def stripe_configured(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_price_id)


# Secrets in AWS: SecureString parameters named after settings fields under the path in
# SPIKES_SSM_PARAMETER_PATH (e.g. /spikes/prod/stripe_secret_key), read once per cold start and
# taking precedence over the environment. Never committed, never in the function's configuration.
# `make secrets` creates them (infra/secrets.py).
SSM_PATH_VARIABLE = "SPIKES_SSM_PARAMETER_PATH"
SSM_PARAMETERS = ("secret_key", "token", "stripe_secret_key", "stripe_webhook_secret",
                  "stripe_event_destination_secret")
REQUIRED_SSM_PARAMETERS = ("secret_key",)
# Until the configuration can be read, every request answers 503 with this Retry-After; each
# request tries again (a failure is not cached), so `make secrets` needs no redeploy.
CONFIGURATION_RETRY_AFTER = 30


def _configuration_unavailable(event: str, **details) -> Exception:
    from chalicelib.errors import DependencyUnavailable
    from chalicelib.logs import configure_logging, get_logger
    # Logging is configured from the settings, which did not load: without this, this line and
    # the request's would leave in structlog's console format, not as JSON like every other.
    configure_logging(os.environ.get("SPIKES_LOG_LEVEL", "INFO").upper())
    get_logger("spikes.settings").error(event, **details)
    return DependencyUnavailable("The server's configuration is unavailable; retry shortly",
                                 retry_after=CONFIGURATION_RETRY_AFTER)


def _ssm_values(path: str) -> dict:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    prefix = path.rstrip("/") + "/"
    client = boto3.session.Session().client(
        "ssm", region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        endpoint_url=os.environ.get("SPIKES_AWS_ENDPOINT_URL"))
    try:
        answer = client.get_parameters(Names=[prefix + name for name in SSM_PARAMETERS], WithDecryption=True)
    except (BotoCoreError, ClientError) as exc:
        raise _configuration_unavailable("settings.ssm_unreadable", path=prefix, error=type(exc).__name__,
                                         detail=str(exc)[:300]) from exc
    missing = [prefix + name for name in REQUIRED_SSM_PARAMETERS if prefix + name in answer.get("InvalidParameters", [])]
    if missing and os.environ.get("SPIKES_STAGE", "local") not in LOCAL_STAGES:  # local stages have a default
        raise _configuration_unavailable("settings.ssm_missing", missing=missing,
                                         fix="create them with `make secrets STAGE=<stage>` (docs/deploy.md)")
    return {item["Name"][len(prefix):]: item["Value"] for item in answer.get("Parameters", [])}


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    from pydantic import ValidationError
    path = os.environ.get(SSM_PATH_VARIABLE)
    values = _ssm_values(path) if path else {}
    try:
        return Settings(**values)
    except ValidationError as exc:
        if os.environ.get("SPIKES_STAGE", "local") in LOCAL_STAGES:
            raise  # a local run shows the mistake at once
        raise _configuration_unavailable("settings.invalid", errors=[
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}" for error in exc.errors()]) from exc


def reset_settings() -> None:
    """Forget the cached settings (tests and the local runner change the environment)."""
    get_settings.cache_clear()
