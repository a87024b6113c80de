"""Cached factories for everything that talks to the outside: created once per warm Lambda,
swappable by tests and the local runner (``reset()`` after changing the environment)."""
from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import boto3
from botocore.config import Config as BotoConfig

if TYPE_CHECKING:
    from chalicelib.settings import Settings

_BOTO_CONFIG = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=10,
                          s3={"addressing_style": "path"}, signature_version="s3v4")


_bound: dict = {"settings": None}


def settings() -> Settings:
    """Settings with models and logging bound to them (idempotent, cheap when warm). The first
    request loads pydantic, PynamoDB and structlog here, not ``import app`` (chalicelib/lazy.py)."""
    from chalicelib.settings import get_settings
    current = get_settings()
    if _bound["settings"] is not current:
        from chalicelib.logs import configure_logging
        from chalicelib.store.models import configure_models
        configure_logging(current.log_level)
        configure_models(current)
        _bound["settings"] = current
    return current


_clients: Dict[Tuple[str, str, Optional[str]], Any] = {}
_clients_lock = threading.Lock()


def _client(service: str, endpoint_url: Optional[str] = None) -> Any:
    """One client per (service, region, endpoint), from one botocore session: loading a
    service model costs ~100 ms, so it happens once per process, not per reset."""
    s = settings()
    key = (service, s.region, endpoint_url or s.aws_endpoint_url)
    with _clients_lock:
        if key not in _clients:
            if "session" not in _clients_session:
                _clients_session["session"] = boto3.session.Session()
            _clients[key] = _clients_session["session"].client(service, region_name=key[1], endpoint_url=key[2],
                                                               config=_BOTO_CONFIG)
        return _clients[key]


_clients_session: Dict[str, Any] = {}


def dynamodb_client() -> Any:
    """The low-level client (table setup, TTL); request paths go through PynamoDB."""
    s = settings()
    return _client("dynamodb", s.dynamodb_endpoint_url)


@functools.lru_cache(maxsize=1)
def s3_client() -> Any:
    return _client("s3")


def share_files():
    """Share files in S3, on the cached client and the configured bucket."""
    from chalicelib.store.files import ShareFiles
    return ShareFiles(s3_client(), settings().bucket_name)


def exports():
    """Large exports staged in S3, on the cached client and the configured bucket."""
    from chalicelib.store.files import Exports
    return Exports(s3_client(), settings().bucket_name)


@functools.lru_cache(maxsize=1)
def ses_client() -> Any:
    return _client("ses")


@functools.lru_cache(maxsize=1)
def mailer():
    from chalicelib.services.mailer import ConsoleMailer, SesMailer, UnconfiguredMailer
    s = settings()
    if s.mail_mode == "console":  # printed links belong in a local terminal, never a stage's logs
        return ConsoleMailer() if s.local_stage else UnconfiguredMailer()
    return SesMailer(ses_client(), s.mail_sender, s.mail_configuration_set)


@functools.lru_cache(maxsize=1)
def stripe_client() -> Any:
    """The Stripe API client; BillingNotConfigured when no secret key is set."""
    import stripe
    from chalicelib.errors import BillingNotConfigured
    s = settings()
    if not s.stripe_secret_key:
        raise BillingNotConfigured()
    try:  # requests (when installed) bounds the call; stripe's urllib fallback has no timeout
        http_client = stripe.RequestsClient(timeout=s.stripe_timeout_seconds)
    except (ImportError, AttributeError):
        http_client = None
    return stripe.StripeClient(s.stripe_secret_key.get_secret_value(),
                               base_addresses={"api": s.stripe_api_base} if s.stripe_api_base else None,
                               max_network_retries=s.stripe_max_network_retries, http_client=http_client)


def reset() -> None:
    """Forget settings and every cached client (after the environment changed)."""
    from chalicelib.settings import reset_settings
    reset_settings()
    _bound["settings"] = None
    for factory in (s3_client, ses_client, mailer, stripe_client):
        factory.cache_clear()
    # What posts cached about project keys belongs to the old environment (tests, the local runner).
    from chalicelib.services import targets
    targets.forget()
    from chalicelib.store import pending_queue  # which legacy sets were found empty: in the old tables
    pending_queue.forget_legacy()
