"""Outbound requests to addresses callers chose (webhooks, input URLs) stay off internal networks.

A webhook or an input URL is a request the platform (or a model server it runs) makes on a
stranger's behalf. Left alone, ``http://169.254.169.254/`` reads cloud credentials and
``http://10.0.0.5:6379/`` talks to Redis. :func:`check_url` resolves the URL's host and refuses
it when any address it resolves to is loopback, private (RFC 1918, ``fc00::/7``, CGNAT),
link-local (``169.254/16`` with the metadata endpoints, ``fe80::/10``), unspecified, multicast or
reserved — unless ``OUTBOUND_ALLOW_CIDRS`` or ``OUTBOUND_ALLOW_HOSTS`` allow it (self-hosters
whose receivers live on their own network).

Checking a name and then letting the HTTP client resolve it again would let a name that answers
differently the second time (DNS rebinding) through; :func:`pinned_request` therefore connects to
the very address that was checked, keeping the name for ``Host`` and TLS (SNI and certificate
verification).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that are not "the internet" but are not covered by the ``is_*`` flags of every Python
# version: CGNAT shared space, and the NAT64 prefixes that embed an IPv4 address.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


class Refused(ValueError):
    """The URL may not be requested; the message says why, for the person who gave it."""


class TooLarge(Refused):
    """The body is longer than the caller accepts."""


@dataclass(frozen=True)
class Target:
    """A URL that passed the check, and the address to connect to."""

    url: str
    host: str
    address: IPAddress


def allowed_networks() -> list[IPNetwork]:
    return [ipaddress.ip_network(c, strict=False) for c in settings.OUTBOUND_ALLOW_CIDRS]


def _embedded_v4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``) IPv6 address, else itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address."""
    address = _embedded_v4(address)
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or any(address in net for net in _EXTRA_BLOCKED if net.version == address.version)
    ):
        return False
    return address.is_global


def address_allowed(address: IPAddress, host: str = "") -> bool:
    if host and host.lower().rstrip(".") in settings.OUTBOUND_ALLOW_HOSTS:
        return True
    if is_public(address):
        return True
    address = _embedded_v4(address)
    return any(address in net for net in allowed_networks() if net.version == address.version)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv6 scope ("fe80::1%eth0") is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


def _parts(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"{url!r} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http and https URLs with a host name are allowed")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str, *, unresolvable_ok: bool = False) -> Target | None:
    """Refuse a URL whose host is, or resolves to, an internal address.

    Every resolved address must be allowed (a name with one public and one private address is
    refused: the client might pick either). With ``unresolvable_ok`` a name that does not resolve
    now passes (returns None): creates accept it, and delivery checks again before connecting.
    """
    host, port = _parts(url)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        if unresolvable_ok:
            return None
        raise Refused(f"the host {host} cannot be resolved") from exc
    for address in addresses:
        if not address_allowed(address, host):
            raise Refused(
                f"the host {host} is an internal address ({address}); "
                "requests to loopback, private, link-local and reserved networks are refused"
            )
    return Target(url=url, host=host, address=addresses[0])


def pinned_request(
    client: httpx.Client, method: str, url: str, *, stream: bool = False, **kwargs: Any
) -> httpx.Response:
    """Check ``url``, then send the request to the address that was checked (never re-resolved).

    ``Host`` keeps the name (and port), and for HTTPS the certificate is verified against the
    name (SNI), so virtual hosts and TLS work as if the name had been used. With ``stream`` the
    body is not read yet (the caller reads what it accepts and closes the response).
    """
    target = check_url(url)
    assert target is not None
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(target.address))
    headers = httpx.Headers(kwargs.pop("headers", None))
    headers["Host"] = original.netloc.decode("ascii")
    extensions = dict(kwargs.pop("extensions", None) or {})
    if original.scheme == "https":
        extensions["sni_hostname"] = original.host
    request = client.build_request(method, pinned, headers=headers, extensions=extensions, **kwargs)
    return client.send(request, stream=stream)


def fetch(url: str, *, max_bytes: int, timeout: float = 30.0) -> tuple[bytes, str]:
    """GET ``url`` for a caller (the MCP ``upload_file`` tool): checked, sent to the checked
    address, redirects not followed, at most ``max_bytes`` read. Returns the body and its
    declared content type; :class:`Refused` (with a message for the caller) otherwise.
    :class:`TooLarge` when the body is longer than ``max_bytes``."""
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout) as client:
            response = pinned_request(client, "GET", url, stream=True)
            try:
                if 300 <= response.status_code < 400:
                    raise Refused("redirects are not followed: give the file's own URL")
                if response.status_code != 200:
                    raise Refused(f"the URL answered {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise TooLarge(url)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise TooLarge(url)
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
            finally:
                response.close()
    except httpx.HTTPError as exc:
        raise Refused(f"the file could not be fetched: {exc or type(exc).__name__}") from exc
    return bytes(data), content_type
