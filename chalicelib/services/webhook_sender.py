"""Sending one webhook request safely: the receiver is checked after DNS resolution (and on
every redirect), the connection goes to the checked address, and the answer is read with a
size and time bound. Used by ``outbound_webhooks``; see docs/webhooks.md."""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from chalicelib.services.webhook_urls import is_public_address
from chalicelib.settings import Settings


# --- the receiver check ----------------------------------------------------------------------

class UnsafeReceiver(Exception):
    """The receiver URL is not allowed (now): the attempt fails without a request."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str
    path: str
    host_header: str


def resolve_target(url: str, allow_loopback: bool,
                   resolver: Callable[..., list] = socket.getaddrinfo) -> Target:
    """Check ``url`` and pick the address to connect to. Every address the name resolves to
    must be allowed: a name that also resolves to a private address is refused."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UnsafeReceiver("not a valid URL") from None
    if not host or parts.username or parts.password:
        raise UnsafeReceiver("not a valid receiver URL")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host).compressed]
    except ValueError:
        try:
            addresses = list(dict.fromkeys(info[4][0] for info in
                                           resolver(host, port, proto=socket.IPPROTO_TCP)))
        except (OSError, UnicodeError):
            raise UnsafeReceiver(f"{host} does not resolve") from None
    if not addresses:
        raise UnsafeReceiver(f"{host} does not resolve")
    refused = [a for a in addresses if not is_public_address(a, allow_loopback)]
    if refused:
        raise UnsafeReceiver(f"{host} resolves to a non-public address ({refused[0]})")
    loopback_only = all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_loopback and loopback_only):
        raise UnsafeReceiver("receivers must use https")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, addresses[0], path, parts.netloc)


@dataclass(frozen=True)
class Attempt:
    status_code: Optional[int]
    error: Optional[str]

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _pool(target: Target, timeout: float):
    # Connect to the checked address; TLS still verifies the certificate for the host name.
    pool_timeout = urllib3.Timeout(connect=min(5.0, timeout), read=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(target.address, target.port, timeout=pool_timeout, retries=False,
                                           maxsize=1, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
                                           server_hostname=target.host, assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=pool_timeout, retries=False, maxsize=1)


def post(settings: Settings, url: str, body: str, headers: Dict[str, str],
         resolver: Callable[..., list] = socket.getaddrinfo) -> Attempt:
    """POST ``body`` to ``url``, checking the receiver (and each redirect) first; read at most
    ``webhook_max_response_bytes`` of the answer within ``webhook_timeout_seconds``."""
    deadline = time.monotonic() + settings.webhook_timeout_seconds
    for hop in range(settings.webhook_max_redirects + 1):
        try:
            target = resolve_target(url, settings.webhook_allow_loopback, resolver)
        except UnsafeReceiver as exc:
            return Attempt(None, f"refused: {exc}")
        pool = _pool(target, max(0.5, deadline - time.monotonic()))
        try:
            response = pool.urlopen("POST", target.path, body=body.encode("utf-8"),
                                    headers={**headers, "Host": target.host_header}, redirect=False,
                                    preload_content=False, retries=False)
            try:
                read = 0
                while read <= settings.webhook_max_response_bytes and time.monotonic() < deadline:
                    chunk = response.read(4096, decode_content=False)
                    if not chunk:
                        break
                    read += len(chunk)
            finally:
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Attempt(None, f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            pool.close()
        status = response.status
        location = response.headers.get("Location")
        if 300 <= status < 400 and location:
            if hop < settings.webhook_max_redirects:
                url = urljoin(url, location)
                continue
            return Attempt(status, "redirect not followed")
        return Attempt(status, None if 200 <= status < 300 else f"HTTP {status}")
    return Attempt(None, "too many redirects")
