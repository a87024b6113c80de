"""Webhook URLs a share owner may set: the SSRF guard, checked when the URL is set (create and
PATCH /shares), before anything is ever sent to it."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from chalicelib.errors import ValidationFailed


def _is_public(address: str, allow_loopback: bool = False) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if allow_loopback and ip.is_loopback:
        return True  # SPIKES_WEBHOOK_ALLOW_LOOPBACK: tests and local development only
    return ip.is_global and not ip.is_multicast


def validate_webhook_url(url: str, allow_loopback: bool = False) -> None:
    """https only, and every address the host resolves to must be public: the server must not
    be steerable at its own network (metadata endpoint, loopback, private ranges)."""
    def invalid(message: str) -> ValidationFailed:
        return ValidationFailed.field("webhook_url", message, "INVALID_WEBHOOK_URL")
    try:
        parsed = urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise invalid("Not a valid URL") from None
    local_http = allow_loopback and parsed.scheme == "http" and host in ("127.0.0.1", "localhost", "::1")
    if (parsed.scheme != "https" and not local_http) or not host:
        raise invalid("Webhook URLs must use https")
    if parsed.username or parsed.password:
        raise invalid("Webhook URLs must not carry credentials")
    try:
        addresses = {ipaddress.ip_address(host).compressed}
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)}
        except (OSError, UnicodeError):
            raise invalid("Webhook host does not resolve") from None
    if not addresses or not all(_is_public(address.split("%", 1)[0], allow_loopback) for address in addresses):
        raise invalid("Webhook URLs must point at a public address")
