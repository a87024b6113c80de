"""Webhook URLs a share owner may set: the SSRF guard, checked when the URL is set (create and
PATCH /shares), before anything is ever sent to it."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from chalicelib.errors import ValidationFailed


# IPv6 prefixes whose addresses carry an IPv4 address that a gateway connects to: NAT64's
# well-known prefix (an AWS NAT gateway translates it, to private VPC addresses too) and the
# deprecated IPv4-compatible form. Python calls them global whatever IPv4 address they carry.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# SIIT's IPv4-translated form (RFC 2765), which a stateless translator connects onward too.
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# NAT64 prefixes for local use (RFC 8215): the IPv4 address may sit anywhere in them.
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address):
    """The IPv4 address an IPv6 address leads to (mapped, 6to4, NAT64, IPv4-compatible), or None."""
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str, allow_loopback: bool = False) -> bool:
    """Whether a webhook may connect to ``address`` (an IP, with or without a zone): a global
    unicast address, judged by the IPv4 address it leads to for IPv6 forms that embed one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if allow_loopback and ip.is_loopback:
        return True  # SPIKES_WEBHOOK_ALLOW_LOOPBACK: tests and local development only
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL_USE or ip.is_site_local:  # fec0::/10: deprecated, still a local range
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(str(embedded), allow_loopback)
    return ip.is_global and not ip.is_multicast


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOOPBACK_HINT = ("; for a receiver on this machine, start the local server with SPIKES_WEBHOOK_ALLOW_LOOPBACK=true "
                 "(tests and local development only: docs/webhooks.md)")


def validate_webhook_url(url: str, allow_loopback: bool = False, local_stage: bool = False) -> None:
    """https only, and every address the host resolves to must be public: the server must not
    be steerable at its own network (metadata endpoint, loopback, private ranges).
    ``local_stage``: the server runs on the developer's machine, where a loopback receiver is
    one switch away (on a Lambda, loopback is the Lambda itself)."""
    def invalid(message: str) -> ValidationFailed:
        return ValidationFailed.field("webhook_url", message, "INVALID_WEBHOOK_URL")
    try:
        parsed = urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise invalid("Not a valid URL") from None
    on_this_machine = host in LOOPBACK_HOSTS
    # A newcomer pointing make dev at a receiver on this machine is told the switch for it.
    hint = LOOPBACK_HINT if on_this_machine and local_stage and not allow_loopback else ""
    if (parsed.scheme != "https" and not (allow_loopback and on_this_machine and parsed.scheme == "http")) or not host:
        raise invalid("Webhook URLs must use https" + hint)
    if parsed.username or parsed.password:
        raise invalid("Webhook URLs must not carry credentials")
    try:
        addresses = {ipaddress.ip_address(host).compressed}
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)}
        except (OSError, UnicodeError):
            raise invalid("Webhook host does not resolve") from None
    if not addresses or not all(is_public_address(address, allow_loopback) for address in addresses):
        raise invalid("Webhook URLs must point at a public address" + hint)


def shown_in_mail(url: str) -> str:
    """The receiver as an e-mail names it: scheme and host only. Many receivers' URLs are their
    own secret (a chat's incoming-webhook path or token), and a mail is copied to places the
    API's answers are not (mailboxes, forwards, a mail provider's logs)."""
    parsed = urlsplit(url)
    host = parsed.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parsed.scheme}://{host}{f':{parsed.port}' if parsed.port else ''}/…"
