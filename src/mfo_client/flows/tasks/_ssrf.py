"""Guarding outbound fetches against server-side request forgery (SSRF).

URLs in flows are templated from event data, so whoever can post an event could otherwise make
this host fetch its own admin ports or the cloud metadata service. `vet` refuses:

- schemes other than http and https;
- hosts that are, or resolve to, an address that is loopback, private, link-local, multicast,
  reserved, unspecified or otherwise not globally routable (100.64.0.0/10 holds a cloud's
  metadata service), including IPv4 addresses embedded in IPv6 ones (`::ffff:127.0.0.1`,
  6to4, Teredo, NAT64). Every address a name resolves to must pass, not just the first.

unless `allow_hosts` allows the host: by name (`internal.example`, or `*.corp.example` for its
subdomains; every address of an allowed name is allowed), or by address or network
(`10.0.0.5`, `10.0.0.0/8`, `::1`), which allows those addresses whatever name led to them.
Numeric hosts in odd forms (`2130706433`, `0x7f.1`) go through the resolver like any name,
which reads them as the address they denote, so they are checked as that address.

DNS rebinding: the host is resolved once, the addresses are checked, and the request is sent to
a checked address (the URL's host replaced by the address; the `Host` header, TLS SNI and
certificate check still use the name), so no second lookup can answer differently. A pinned
HTTPS request asks for its connection to be closed after use: pooled connections are keyed by
address, and one set up (and certificate-checked) for one name must not carry a request for
another name served at the same address. Redirects are re-vetted hop by hop.

A request sent elsewhere than its URL's host (`via`: the `connect_to` setting of `http_get_task`)
is checked at the host it is sent to, the URL's own host never being looked up: the rules
protect what a request reaches, not what it is called.

Not covered: a proxy configured on a caller's shared `httpx.AsyncClient` sees the pinned
address and goes wherever it routes it; an HTTP/2 client may reuse a connection across names
at one address; and a public address that forwards into a private network is public as far as
this check can tell.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

from mfo_client.flows._errors import TaskError

__all__ = [
    "HostPolicy",
    "Target",
    "UnsafeURLError",
    "check_allow_entry",
    "endpoint",
    "host_port",
    "shown_url",
    "vet",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PORT = re.compile(r"[0-9]{1,5}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_REASONS = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_reserved", "a reserved"),
    ("is_private", "a private"),
)


# Refused whatever this Python's `ipaddress` tables say (they differ between patch releases):
# shared address space, IETF protocol assignments, benchmarking, site-local, documentation.
_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "fec0::/10",
        "2001:db8::/32",
        "64:ff9b:1::/48",
    )
)


class UnsafeURLError(TaskError):
    """A URL this task refuses to fetch; the message says why and how to allow it."""


def check_allow_entry(entry: str) -> str:
    """`entry` if it is a host name, `*.` + a domain, an IP address or a CIDR network."""
    if _network(entry) is None and _name(entry.removeprefix("*.")) is None:
        raise ValueError(
            f'not a host name, IP address or CIDR network: "{entry}" '
            '(write "api.internal", "*.corp.example", "10.0.0.5" or "10.0.0.0/8")'
        )
    return entry


def host_port(text: str) -> tuple[str, int]:
    """`("api.example.com", 443)` for `"api.example.com:443"`: a host (a name, an IPv4 address
    or a bracketed IPv6 one) in the form `endpoint` gives, and a port, which is required."""
    host, colon, port = text.strip().rpartition(":")
    if colon and _PORT.fullmatch(port) and 0 < int(port) < 65536:
        bracketed = host.startswith("[") and host.endswith("]")
        address = _address(host) if bracketed or ":" not in host else None
        if address is not None and bracketed == (address.version == 6):
            return str(address), int(port)
        name = None if address is not None or bracketed else _name(host)
        if name is not None:
            return name, int(port)
    raise ValueError(
        f'not a "host:port" with a port from 1 to 65535: "{text}" '
        '(write "api.example.com:443", "10.0.0.5:8443" or "[::1]:8443")'
    )


def endpoint(url: httpx.URL) -> tuple[str, int]:
    """The host (as `host_port` gives it) and port (the scheme's default if none) of `url`."""
    host = url.raw_host.decode("ascii").lower()
    address = _address(host)
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
    return (str(address) if address is not None else host.rstrip(".")), port


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """What `allow_hosts` lets through despite being non-public."""

    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()
    """`.corp.example` for `*.corp.example`: its subdomains."""
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> HostPolicy:
        names: set[str] = set()
        domains: list[str] = []
        networks: list[IPNetwork] = []
        for entry in entries:
            network = _network(entry)
            if network is not None:
                networks.append(network)
            elif entry.startswith("*."):
                domains.append("." + (_name(entry[2:]) or entry[2:]))
            else:
                names.add(_name(entry) or entry)
        return cls(frozenset(names), tuple(domains), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return host in self.names or host.endswith(self.domains)

    def allows_address(self, address: IPAddress) -> bool:
        return any(a in net for a in _with_embedded(address) for net in self.networks)


@dataclass(frozen=True, slots=True)
class Target:
    """A vetted URL and the addresses it may be fetched from, in the resolver's order."""

    url: httpx.URL
    addresses: tuple[str, ...]
    """Empty when the host vetted is itself an address: nothing to pin."""
    via: httpx.URL | None = None
    """`url` with the host and port it is sent to instead, if any (the host vetted)."""

    def pinned(self, address: str) -> httpx.URL:
        return (self.via or self.url).copy_with(host=address)

    def destinations(self) -> list[httpx.URL]:
        """Where to send the request, to be tried in order: `url` sent to one of these (its
        `Host` header, TLS SNI and certificate check still naming `url`'s host)."""
        if self.addresses:
            return [self.pinned(address) for address in self.addresses]
        return [self.via or self.url]


def shown_url(url: httpx.URL | str) -> str:
    """`url` fit for messages and logs: without a password it may carry."""
    if isinstance(url, str):
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return url.rsplit("@", 1)[-1]
    else:
        parsed = url
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else str(parsed)


async def vet(url: httpx.URL, policy: HostPolicy, via: httpx.URL | None = None) -> Target:
    """Check `url` against the rules above, or, if it is to be sent `via` another host and
    port, check that host instead; UnsafeURLError if refused."""
    shown = shown_url(url)
    where = f'"{shown}"'
    details: dict[str, str] = {"url": shown}
    if via is not None:
        details["connect_to"] = via.netloc.decode("ascii")
        where += f" through {details['connect_to']} (its connect_to)"
    if url.scheme not in SCHEMES:
        raise UnsafeURLError(
            f'refusing to fetch "{shown}": only http and https URLs are allowed, '
            f'not "{url.scheme}"',
            url=shown,
        )
    host = (via or url).raw_host.decode("ascii").lower()
    if not host:
        raise UnsafeURLError(f'refusing to fetch "{shown}": the URL has no host', url=shown)
    literal = _address(host)
    if literal is not None:
        reason = None if policy.allows_address(literal) else _blocked(literal)
        if reason:
            raise UnsafeURLError(
                f"refusing to fetch {where}: {literal} is {reason} address; "
                f'to allow it, add "{literal}" to allow_hosts',
                host=host,
                **details,
            )
        return Target(url, (), via)
    addresses = await _resolve(where, host, details)
    if not policy.allows_name(host.rstrip(".")):
        for address in addresses:
            reason = None if policy.allows_address(address) else _blocked(address)
            if reason:
                raise UnsafeURLError(
                    f'refusing to fetch {where}: host "{host}" resolves to {address}, '
                    f'{reason} address; to allow it, add "{host}" (or "{address}") '
                    "to allow_hosts",
                    host=host,
                    address=str(address),
                    **details,
                )
    return Target(url, tuple(str(a) for a in addresses), via)


async def _resolve(where: str, host: str, details: dict[str, str]) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise TaskError(
            f'cannot fetch {where}: host "{host}" does not resolve ({reason})',
            host=host,
            **details,
        ) from None
    found: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        found[ipaddress.ip_address(sockaddr[0])] = None
    if not found:
        raise TaskError(f'cannot fetch {where}: host "{host}" has no address', **details)
    return list(found)


def _blocked(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from (`"a loopback"`), or None if it is public."""
    for candidate in _with_embedded(address):
        for prop, reason in _REASONS:
            if getattr(candidate, prop):
                return reason
        if isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local:
            return "a site-local"
        if not candidate.is_global or any(candidate in net for net in _ALWAYS_BLOCKED):
            return "a non-public (not globally routable)"
    return None


def _with_embedded(address: IPAddress) -> Iterator[IPAddress]:
    yield address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
        if address.sixtofour is not None:
            yield address.sixtofour
        if address.teredo is not None:
            yield address.teredo[1]
        if address in _NAT64:
            yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text.strip().removeprefix("[").removesuffix("]"), strict=False)
    except ValueError:
        return None


def _name(text: str) -> str | None:
    """The host name in the form URLs carry it (lower case, IDNA), or None if not a name."""
    text = text.strip()
    if ":" in text:  # a port, a scheme or an IPv6 address: never part of a name
        return None
    try:
        url = httpx.URL(f"http://{text}/")
    except (httpx.InvalidURL, UnicodeError):
        return None
    host = url.raw_host.decode("ascii").lower()
    if url.userinfo or url.path != "/" or url.query or url.fragment or len(host) > 254:
        return None
    return host.rstrip(".") if _HOSTNAME.fullmatch(host) else None
