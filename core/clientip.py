"""The client's IP address, believing ``X-Forwarded-For`` only from trusted proxies.

``settings.TRUSTED_PROXIES`` lists the addresses or networks (CIDR) of our own reverse proxies
(default: none). A request whose ``REMOTE_ADDR`` is not one of them is answered for
``REMOTE_ADDR`` whatever headers it sends. When the peer is a trusted proxy, ``X-Forwarded-For``
is read from the right (each proxy appends the address it saw): the first entry that is not
itself a trusted proxy is the client. Entries to its left were written by the client and are
ignored, so rotating or forging the header changes nothing.

Used by every "client IP" in the project and by django-ratelimit's ``ip`` key
(``RATELIMIT_IP_META_KEY``).
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A peer without a usable address (e.g. a unix socket with no proxy header): one shared bucket.
UNKNOWN_CLIENT = "0.0.0.0"  # noqa: S104 (a bucket name, never bound)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def trusted_proxy_networks() -> tuple[IPNetwork, ...]:
    return _networks(tuple(entry for entry in settings.TRUSTED_PROXIES if entry.strip()))


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or ``REMOTE_ADDR``; ``[v6]:port`` and ``v4:port`` are accepted,
    IPv4-mapped IPv6 is read as IPv4; anything else is None."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest) -> str:
    networks = trusted_proxy_networks()
    peer = parse_ip(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return UNKNOWN_CLIENT
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    nearest = peer
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            # A trusted proxy never writes garbage: the client did. Stop at the nearest proxy
            # (one bucket for what hides behind it) rather than believe what is further left.
            return str(nearest)
        if not _is_trusted(address, networks):
            return str(address)
        nearest = address
    return str(nearest)
