"""The SSRF guard: every URL a tool fetches goes through `GuardedFetcher`.

Only http and https are fetched. The host is resolved by the connection layer itself
(`GuardedBackend`, an httpcore network backend) and the connection is refused when ANY of its
addresses is loopback, private, link-local (cloud metadata 169.254.169.254), shared/CGNAT
(100.64.0.0/10), multicast, unspecified, reserved or otherwise not globally routable; IPv6
forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, 6to4, Teredo, NAT64) are judged by
that IPv4 address. The socket is then opened to the very address that was checked, never to the
name, so a DNS answer that changes between the check and the connection (DNS rebinding) cannot
slip through; TLS still verifies the certificate against the host name (httpcore passes
`server_hostname` to `start_tls`).

Redirects are followed here (each hop goes through the same backend), at most
`browse_max_redirects`; credentials (Authorization, Cookie, Proxy-Authorization and URL userinfo)
are dropped when a redirect leaves the origin. The body is streamed and refused past
`browse_max_bytes`; the whole fetch, redirects included, must end within `browse_timeout_s`.

`BROWSE_ALLOWED_HOSTS` lets an admin allow internal hosts: a listed host name lets that name
through whatever it resolves to; a listed IP address (or network, `10.1.0.0/16`) lets that
address through whatever name led to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from bot.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
SENSITIVE_HEADERS = ("authorization", "cookie", "proxy-authorization")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class FetchError(Exception):
    """A fetch was refused or failed; `message` is fit to show the agent (no credentials).
    (Not a ToolError, so that this module does not import the tools package: tools turn it into
    one.)"""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BlockedAddressError(FetchError):
    """The SSRF guard refused the host or one of its addresses; nothing was connected."""


@dataclass(frozen=True)
class FetchResult:
    url: str  # the final URL, after redirects, without userinfo
    status: int
    content_type: str  # media type, lower case, without parameters ("" when absent)
    body: bytes
    truncated: bool = False
    charset: str | None = None
    headers: Mapping[str, str] | None = None

    def text(self) -> str:
        """The body decoded with the charset it declared (UTF-8 when none or unknown)."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------ addresses


def blocked_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be connected to, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (embedded in {ip})" if inner else None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # (server, client): the client is where packets end up
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_ip(text: str) -> IPAddress | None:
    """An IP literal (IPv6 with or without brackets, zone id dropped), else None."""
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    value = value.split("%", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _norm_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


class HostPolicy:
    """What the guard lets through: public addresses, plus what BROWSE_ALLOWED_HOSTS lists."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in allowed:
            item = _norm_host(entry)
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.names.add(item)

    def name_allowed(self, host: str) -> bool:
        return _norm_host(host) in self.names

    def address_allowed(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.networks if c.version == net.version)

    def check(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise BlockedAddressError unless every address may be connected to."""
        if self.name_allowed(host):
            return
        for ip in addresses:
            if self.address_allowed(ip):
                continue
            reason = blocked_reason(ip)
            if reason:
                where = f"it is {reason}" if parse_ip(host) is not None else f"it resolves to {ip}, {reason}"
                raise BlockedAddressError(
                    f"Refused to connect to {host}: {where}. Only public web addresses can be fetched "
                    "(an admin may allow internal hosts with BROWSE_ALLOWED_HOSTS)."
                )


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver, in its order, without duplicates."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen


async def resolve_checked(
    host: str, port: int, policy: HostPolicy, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Resolve `host` once and check every address; the addresses to connect to, in order.

    An IP literal is checked as it is, without asking any resolver."""
    literal = parse_ip(host)
    if literal is not None:
        policy.check(host, [literal])
        return [literal]
    name = _norm_host(host)
    if not name:
        raise BlockedAddressError("Refused: the URL has no host.")
    try:
        raw = await (resolver or system_resolver)(name, port)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"Could not resolve {name}: {exc}") from None
    addresses: list[IPAddress] = []
    for text in raw:
        ip = parse_ip(text)
        if ip is None:  # a resolver answer that is no address at all: refuse, never guess
            raise BlockedAddressError(f"Refused to connect to {name}: the resolver answered {text!r}.")
        addresses.append(ip)
    if not addresses:
        raise FetchError(f"Could not resolve {name}: no addresses.")
    policy.check(name, addresses)
    return addresses


# ------------------------------------------------------------------------- connection layer


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves the host itself, checks every address, and
    connects to a checked address: resolution, check and connection are one step."""

    def __init__(
        self,
        policy: HostPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self.policy, self.resolver)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("Refused: Unix sockets are never connected to.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool built on a `GuardedBackend`, and no proxy."""

    def __init__(self, backend: GuardedBackend, *, verify: bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=10,
            max_keepalive_connections=5,
            network_backend=backend,
        )


# ----------------------------------------------------------------------------------- fetcher


def display_url(url: httpx.URL | str) -> str:
    """`url` without userinfo, safe to show."""
    u = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return str(u.copy_with(userinfo=b"")) if u.userinfo else str(u)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def check_url(url: str | httpx.URL) -> httpx.URL:
    """Parse `url`; refuse anything but http(s) with a host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"Invalid URL: {exc}") from None
    if not parsed.scheme:
        raise FetchError(
            f"Invalid URL {display_url(parsed)}: it has no scheme; give a full URL starting with "
            "http:// or https://."
        )
    if parsed.scheme not in SCHEMES:
        raise BlockedAddressError(
            f"Refused: only http and https URLs can be fetched, not {parsed.scheme} URLs "
            f"({display_url(parsed)})."
        )
    if not parsed.host:
        raise BlockedAddressError(f"Refused: the URL {display_url(parsed)} has no host.")
    return parsed


class GuardedFetcher:
    """Fetch URLs through the SSRF guard with the redirect, size and time caps of `settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        inner_backend: httpcore.AsyncNetworkBackend | None = None,
        verify: bool = True,
    ) -> None:
        self.settings = settings
        self.policy = HostPolicy(settings.browse_allowed_hosts)
        self.resolver = resolver
        self.backend = GuardedBackend(self.policy, resolver, inner_backend)
        self.verify = verify
        self.max_bytes = settings.browse_max_bytes
        self.timeout_s = settings.browse_timeout_s
        self.max_redirects = settings.browse_max_redirects

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=GuardedTransport(self.backend, verify=self.verify),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": self.settings.user_agent},
        )

    async def fetch(
        self, url: str, *, headers: Mapping[str, str] | None = None, truncate: bool = False
    ) -> FetchResult:
        """GET `url`. Past `browse_max_bytes` the fetch fails, or with `truncate` the first
        `browse_max_bytes` are returned with `truncated=True`."""
        start = check_url(url)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._fetch(start, dict(headers or {}), truncate)
        except TimeoutError:
            raise FetchError(
                f"Timed out: {display_url(start)} did not answer in full within {self.timeout_s:g} s."
            ) from None

    async def _fetch(self, start: httpx.URL, headers: dict[str, str], truncate: bool) -> FetchResult:
        url = start
        async with self.client() as client:
            for hop in range(self.max_redirects + 1):
                request = client.build_request("GET", url, headers=headers)
                try:
                    response = await client.send(request, stream=True)
                except BlockedAddressError as exc:
                    if hop:
                        raise BlockedAddressError(
                            f"{display_url(start)} redirected to a refused address. {exc.message}"
                        ) from None
                    raise
                except FetchError:
                    raise
                except httpx.TimeoutException:
                    raise TimeoutError from None
                except httpx.HTTPError as exc:
                    raise FetchError(f"Could not fetch {display_url(url)}: {_why(exc)}") from None
                try:
                    if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                        if hop == self.max_redirects:
                            raise FetchError(
                                f"Too many redirects: {display_url(start)} redirected more than "
                                f"{self.max_redirects} times (BROWSE_MAX_REDIRECTS)."
                            )
                        url, headers = self._redirect(url, response.headers["location"], headers)
                        continue
                    if response.status_code >= 400:
                        reason = response.reason_phrase or ""
                        raise FetchError(
                            f"HTTP error {response.status_code} {reason}".rstrip()
                            + f" from {display_url(url)}."
                        )
                    body, truncated = await self._read(response, url, truncate)
                finally:
                    await response.aclose()
                media = response.headers.get("content-type", "").partition(";")[0]
                return FetchResult(
                    url=display_url(url),
                    status=response.status_code,
                    content_type=media.strip().lower(),
                    body=body,
                    truncated=truncated,
                    charset=response.charset_encoding,
                    headers=dict(response.headers),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _redirect(
        self, url: httpx.URL, location: str, headers: dict[str, str]
    ) -> tuple[httpx.URL, dict[str, str]]:
        try:
            target = url.join(location.strip())
        except (httpx.InvalidURL, ValueError) as exc:
            raise FetchError(f"{display_url(url)} redirected to an invalid URL: {exc}") from None
        target = check_url(target)
        if _origin(target) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
            if target.userinfo:
                target = target.copy_with(userinfo=b"")
        return target, headers

    async def _read(self, response: httpx.Response, url: httpx.URL, truncate: bool) -> tuple[bytes, bool]:
        too_big = (
            f"Too big: {display_url(url)} is larger than the {self.max_bytes:,} bytes "
            "(BROWSE_MAX_BYTES) a page may have."
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes and not truncate:
            raise FetchError(too_big)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():  # decoded: a compressed bomb counts in full
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    if not truncate:
                        raise FetchError(too_big)
                    return b"".join(chunks)[: self.max_bytes], True
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not read {display_url(url)}: {_why(exc)}") from None
        return b"".join(chunks), False


def _why(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({text})"
    return text
