"""The limits among the settings: rate limits, how many keys an account holds, the tiers' limits
and prices, and the sizes a request, an upload or a served file may reach. chalicelib/settings.py's
one settings object inherits them (read as every setting is, from ``SPIKES_<NAME>``); nothing reads
this class on its own."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _unlimited_as_none(value: Any) -> Any:
    """A tier limit set to "unlimited" (or "none": an environment variable or SSM parameter
    can hold no null) is unlimited, as the defaults' None is."""
    if isinstance(value, str) and value.strip().lower() in ("none", "null", "unlimited"):
        return None
    return value


# A tier's limit: a count (0 allows nothing) or None, unlimited. Negative is refused: /usage would
# answer it and the CLI, which parses limits as unsigned, would fail.
TierLimit = Annotated[Optional[Annotated[int, Field(ge=0)]], BeforeValidator(_unlimited_as_none)]


MAX_PRESIGN_TTL_SECONDS = 7 * 24 * 3600


class LimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPIKES_", extra="ignore")

    # Rate limits: (requests, window seconds).
    rate_spikes_per_minute: int = 60
    rate_shares_per_minute: int = 10
    rate_password_per_minute: int = 5
    # All addresses together, per share: each network's own allowance does not bound a guesser
    # with many (docs/security.md, 156). Above a few networks' worth, so one cannot lock others out.
    rate_password_per_share_per_minute: int = Field(default=60, ge=1)
    rate_login_per_address: int = 5
    rate_login_per_ip: int = 20
    rate_login_window_seconds: int = 15 * 60
    # Sign-in mails per hour from everywhere together: many networks must not send SES mail without
    # end (cost, and a suspension that stops every mail). Spending it takes as many networks as the
    # signup budget does (docs/security.md, 242).
    rate_sign_in_mails_per_hour: int = Field(default=500, ge=1)
    rate_poll_per_minute: int = 30
    # Sign-in links opened or exchanged (GET and POST /auth/verify together) per client network:
    # a person uses a few; a flood of guesses costs reads and counts (docs/security.md, 241).
    rate_verify_per_minute: int = Field(default=30, ge=1)
    # Exports (GET /spikes/export) per client network, or per account for a signed-in caller or a
    # key: each reads a whole partition for up to 25 s and may stage a file in S3 for a day. A
    # person clicks the dashboard's button a few times a minute at most (docs/security.md, 248).
    rate_exports_per_minute: int = Field(default=10, ge=1)
    # Background exports (POST /exports) running at once per requester, counted as the exports
    # above are (per account, or per client network): one requester's many long exports would
    # take every turn of the exports job from everyone else's. A start past it tries each slot
    # once, so it stays small (docs/security.md, 264).
    max_running_exports: int = Field(default=3, ge=1, le=20)
    # Listings (GET /spikes) read without a credential, per client network: a public project key is
    # in the widget's pages, and each page is Queries. A person reading a 30,000-spike share 1,000
    # at a time reads 30 pages; `spikes pull --from` reads one (docs/security.md, 257).
    rate_listings_per_minute: int = Field(default=120, ge=1)
    # GET /shares per account, in units: one per call and one per 100 shares it lists past the first
    # 100 (a call may read 10,000 shares and their totals). 120 lets `watch spikes shares` of an
    # account with up to 400 shares, and its dashboard, list (docs/security.md, 309 and 338).
    rate_share_listings_per_minute: int = Field(default=120, ge=1)

    # Keys and self-signup: per IP per hour (SPIKES_AGENT_SIGNUP turns the signup on).
    rate_agent_signup_per_hour: int = 5
    # Self-signups per hour from everywhere together: many networks must not farm accounts
    # without end (docs/security.md, 153).
    rate_agent_signups_per_hour: int = Field(default=30, ge=1)
    # Per account, whatever the credential: keys live at once (not revoked, not expired) and keys
    # created per hour. A leaked key cannot mint keys without end (docs/security.md, 61).
    max_api_keys: int = Field(default=100, ge=1)
    rate_keys_per_hour: int = Field(default=30, ge=1)

    # Tier limits; None = unlimited ("unlimited" in the environment).
    free_spike_limit: TierLimit = 100
    free_share_limit: TierLimit = 5
    pro_spike_limit: TierLimit = None
    pro_share_limit: TierLimit = None
    # The agent tier is metered (a price per spike stored and per share created): no limits by
    # default, spending bounded by the account's and keys' monthly caps. Caps and /usage count
    # thousandths of a cent: a finer price could not be counted as Stripe bills it, so is refused.
    agent_spike_limit: TierLimit = None
    agent_share_limit: TierLimit = None
    agent_price_per_spike_cents: Decimal = Field(default=Decimal("0.1"), ge=0, decimal_places=3)
    agent_price_per_share_cents: Decimal = Field(default=Decimal("1"), ge=0, decimal_places=3)

    max_json_bytes: int = 64 * 1024
    # Lambda caps a request at 6 MB including base64 for binary bodies.
    max_direct_upload_bytes: int = 4 * 1024 * 1024
    max_share_bytes: int = 50 * 1024 * 1024
    max_share_files: int = 500
    # S3 refuses a presigned URL (SigV4) that lives longer than 7 days; the staging area's
    # lifecycle rule (store/files.py) counts on that bound.
    presign_ttl_seconds: int = Field(default=15 * 60, gt=0, le=MAX_PRESIGN_TTL_SECONDS)

    # Share files above this are served by a redirect to a presigned S3 URL: a Lambda response
    # is capped at 6 MB including base64.
    max_served_file_bytes: int = 4 * 1024 * 1024
