"""Sending one webhook request safely: the receiver is checked after DNS resolution (and on
every redirect), the connection goes to the checked address, and the answer is read with a
size and time bound. Used by ``webhook_delivery``; see docs/webhooks.md."""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple
from urllib.parse import quote, urljoin, urlsplit

import certifi

from chalicelib.services.webhook_urls import is_public_address
from chalicelib.settings import Settings


# --- the receiver check ----------------------------------------------------------------------

# What a URL's path and query keep as written (reserved characters and existing %-escapes).
_URL_SAFE = "/%:@!$&'()*+,;=-._~"

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
    try:  # the Host header and the TLS name are ASCII: an internationalised name goes as IDNA
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeReceiver(f"{host} is not a valid host name") from None
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
    # The request line is ASCII too: anything else in the path or query is percent-encoded.
    path = quote(parts.path or "/", safe=_URL_SAFE) + (f"?{quote(parts.query, safe=_URL_SAFE + '?')}"
                                                        if parts.query else "")
    host_header = (f"[{host}]" if ":" in host else ascii_host) + (f":{parts.port}" if parts.port else "")
    return Target(parts.scheme, ascii_host, port, addresses[0], path, host_header)


@dataclass(frozen=True)
class Attempt:
    status_code: Optional[int]
    error: Optional[str]

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Deadline:
    """The attempt's time bound. A socket timeout bounds one read only: a receiver that sends a
    byte just before each read times out (TLS handshake, headers or body) would hold the job for
    as long as it likes. At the deadline the attempt's socket is shut down, which ends any read
    blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socket = sock
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._socket is not None:
                self._shut(self._socket)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:  # socket.socket's own shutdown: on a TLS socket it leaves the TLS state to its reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _connect(target: Target, seconds: float, deadline: _Deadline) -> socket.socket:
    # Connect to the checked address; TLS still verifies the certificate for the host name.
    sock = socket.create_connection((target.address, target.port), timeout=min(5.0, seconds))
    deadline.watch(sock)
    sock.settimeout(seconds)
    if target.scheme != "https":
        return sock
    context = ssl.create_default_context(cafile=certifi.where())
    secure = context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
    deadline.watch(secure)
    secure.do_handshake()
    return secure


def _exchange(settings: Settings, target: Target, body: bytes, headers: Dict[str, str], seconds: float,
              deadline: _Deadline) -> Tuple[int, Optional[str]]:
    """One request on a socket of its own: the answer's status and Location. Reads at most
    ``webhook_max_response_bytes`` of the body, and none of it past the deadline."""
    connection = http.client.HTTPConnection(target.host, target.port)
    try:
        connection.sock = _connect(target, seconds, deadline)
        connection.request("POST", target.path, body=body, headers={**headers, "Host": target.host_header})
        response = connection.getresponse()
        read = 0
        try:
            while read <= settings.webhook_max_response_bytes and not deadline.expired:
                chunk = response.read(4096)
                if not chunk:
                    break
                read += len(chunk)
        except (http.client.HTTPException, OSError):
            if not deadline.expired:
                raise  # the body broke off; a body still coming at the deadline does not count
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def post(settings: Settings, url: str, body: str, headers: Dict[str, str],
         resolver: Callable[..., list] = socket.getaddrinfo) -> Attempt:
    """POST ``body`` to ``url``, checking the receiver (and each redirect) first; read at most
    ``webhook_max_response_bytes`` of the answer, all hops within ``webhook_timeout_seconds``."""
    ends_at = time.monotonic() + settings.webhook_timeout_seconds
    for hop in range(settings.webhook_max_redirects + 1):
        try:
            target = resolve_target(url, settings.webhook_allow_loopback, resolver)
        except UnsafeReceiver as exc:
            return Attempt(None, f"refused: {exc}")
        seconds = max(0.5, ends_at - time.monotonic())
        deadline = _Deadline(seconds)
        try:
            status, location = _exchange(settings, target, body.encode("utf-8"), headers, seconds, deadline)
        except (http.client.HTTPException, OSError) as exc:
            if deadline.expired:
                return Attempt(None, f"Timeout: no complete answer within {settings.webhook_timeout_seconds:g} s")
            return Attempt(None, f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            deadline.cancel()
        if 300 <= status < 400 and location:
            if hop < settings.webhook_max_redirects:
                url = urljoin(url, location)
                continue
            return Attempt(status, "redirect not followed")
        return Attempt(status, None if 200 <= status < 300 else f"HTTP {status}")
    return Attempt(None, "too many redirects")
