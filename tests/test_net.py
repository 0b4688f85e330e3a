"""The SSRF guard (bot/net.py) against a real local page server: internal addresses refused
before any connection, redirects re-checked, credentials dropped across origins, and the size,
time and redirect caps. The DNS-rebinding tests inject a resolver (GuardedBackend's own seam)
and an inner backend that records where the guard connects."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import pytest

from bot.net import (
    BlockedAddressError,
    FetchError,
    GuardedBackend,
    GuardedFetcher,
    HostPolicy,
    blocked_reason,
)
from bot.settings import Settings
from tests.fakes.pages import ARTICLE_TITLE, PageServer


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with PageServer(second_address=False) as s:
        yield s


@pytest.fixture
def pages(server: PageServer) -> PageServer:
    server.reset()
    return server


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[call-arg]


class Recorder(httpcore.AsyncNetworkBackend):
    """The inner backend: records every connection the guard opens; with `refuse`, opens none."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.refuse = refuse
        self.real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        if self.refuse:
            raise httpcore.ConnectError("recorder: not connecting")
        return await self.real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


class ScriptedResolver:
    """Answers each lookup with the next list of addresses (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


# ------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("address", "word"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
def test_internal_addresses_are_blocked(address: str, word: str) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason is not None and word in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_allow_list_matches_names_and_addresses() -> None:
    policy = HostPolicy(["Intranet.Example.", "127.0.0.1", "[::1]", "10.1.0.0/16"])
    policy.check("intranet.example", [ipaddress.ip_address("10.9.9.9")])  # a listed name
    policy.check("anything", [ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("::1")])
    policy.check("mapped", [ipaddress.ip_address("::ffff:127.0.0.1")])
    with pytest.raises(BlockedAddressError, match=r"10\.2\.0\.1"):
        policy.check("other", [ipaddress.ip_address("10.1.0.1"), ipaddress.ip_address("10.2.0.1")])


# ------------------------------------------------------------------- refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/article",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/article",
        "http://[::ffff:127.0.0.1]:{port}/article",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0:{port}/article",
        "http://192.168.0.1/",
        "http://localhost:{port}/article",  # a name resolving to loopback
        "http://2130706433:{port}/article",  # 127.0.0.1 as one number, resolved by the system
        "https://127.1:{port}/article",
    ],
)
async def test_internal_urls_are_refused_before_any_connection(
    pages: PageServer, tmp_path: Path, url: str
) -> None:
    recorder = Recorder()
    fetcher = GuardedFetcher(settings_for(tmp_path), inner_backend=recorder)
    with pytest.raises(BlockedAddressError) as caught:
        await fetcher.fetch(url.format(port=pages.port))
    assert caught.value.message.startswith("Refused to connect to ")
    assert "BROWSE_ALLOWED_HOSTS" in caught.value.message
    assert recorder.calls == []  # no connection was even attempted
    assert pages.requests == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/_x", "data:text/plain,hi"]
)
async def test_other_schemes_are_refused(tmp_path: Path, url: str) -> None:
    recorder = Recorder()
    fetcher = GuardedFetcher(
        settings_for(tmp_path, browse_allowed_hosts=["127.0.0.1"]), inner_backend=recorder
    )
    with pytest.raises(BlockedAddressError, match="only http and https"):
        await fetcher.fetch(url)
    assert recorder.calls == []


async def test_a_url_without_scheme_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="http:// or https://"):
        await GuardedFetcher(settings_for(tmp_path)).fetch("example.com/page")


# ------------------------------------------------------------------------------- allow-list


async def test_allowed_ip_lets_the_page_server_through(pages: PageServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, browse_allowed_hosts="127.0.0.1")
    result = await GuardedFetcher(settings).fetch(pages.url("/article"))
    assert result.status == 200
    assert result.content_type == "text/html"
    assert result.charset == "utf-8"
    assert ARTICLE_TITLE in result.text()
    assert result.url == pages.url("/article")
    assert not result.truncated
    [seen] = pages.seen("/article")
    assert seen.headers["User-Agent"] == settings.user_agent


async def test_allowed_name_is_not_an_allowed_address(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="localhost"))
    result = await fetcher.fetch(f"http://localhost:{pages.port}/plain.txt")
    assert result.status == 200
    with pytest.raises(BlockedAddressError, match="loopback"):
        await fetcher.fetch(pages.url("/plain.txt"))
    assert pages.paths() == ["/plain.txt"]


# -------------------------------------------------------------------------------- redirects


async def test_a_redirect_chain_is_followed(pages: PageServer, tmp_path: Path) -> None:
    result = await GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1")).fetch(
        pages.url("/redirect/3")
    )
    assert result.url == pages.url("/article")
    assert pages.paths() == ["/redirect/3", "/redirect/2", "/redirect/1", "/article"]


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://100.64.0.1:8080/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused(
    pages: PageServer, tmp_path: Path, target: str
) -> None:
    recorder = Recorder()
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"), inner_backend=recorder)
    with pytest.raises(BlockedAddressError) as caught:
        await fetcher.fetch(pages.url(f"/redirect-to?url={target}"))
    assert "Refused" in caught.value.message
    assert {host for host, _port in recorder.calls} == {"127.0.0.1"}  # only the allowed server
    assert pages.paths() == ["/redirect-to"]


async def test_redirect_cap(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1", browse_max_redirects=2))
    assert (await fetcher.fetch(pages.url("/redirect/2"))).url == pages.url("/article")
    pages.reset()
    with pytest.raises(FetchError, match=r"Too many redirects: .*/redirect/3 redirected more than 2"):
        await fetcher.fetch(pages.url("/redirect/3"))
    assert pages.paths() == ["/redirect/3", "/redirect/2", "/redirect/1"]
    assert Settings.model_fields["browse_max_redirects"].default == 5


async def test_credentials_are_dropped_on_a_cross_origin_redirect(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1,localhost"))
    secret = {
        "Authorization": "Bearer secret-token",
        "Cookie": "sid=secret-cookie",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "X-Trace": "kept",
    }
    result = await fetcher.fetch(pages.url("/cross"), headers=secret)
    assert result.url == f"http://localhost:{pages.port}/headers"
    [first] = pages.seen("/cross")
    [second] = pages.seen("/headers")
    assert first.headers["Authorization"] == "Bearer secret-token"
    assert first.headers["Cookie"] == "sid=secret-cookie"
    assert second.host == f"localhost:{pages.port}"
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        assert name not in second.headers
    assert second.headers["X-Trace"] == "kept"
    assert "secret" not in result.body.decode()


async def test_url_userinfo_is_dropped_cross_origin_and_never_shown(
    pages: PageServer, tmp_path: Path
) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1,localhost"))
    result = await fetcher.fetch(f"http://alice:s3cret@127.0.0.1:{pages.port}/cross")
    assert pages.seen("/cross")[0].headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in pages.seen("/headers")[0].headers
    assert "s3cret" not in result.url
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"http://alice:s3cret@127.0.0.1:{pages.port}/status/404")
    assert "HTTP error 404" in caught.value.message and "s3cret" not in caught.value.message
    with pytest.raises(BlockedAddressError) as blocked:
        await fetcher.fetch("http://alice:s3cret@10.0.0.1/")
    assert "s3cret" not in blocked.value.message


async def test_credentials_are_kept_on_a_same_origin_redirect(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"))
    result = await fetcher.fetch(pages.url("/same"), headers={"Authorization": "Bearer same-site"})
    assert json.loads(result.body)["Authorization"] == "Bearer same-site"


# ------------------------------------------------------------------------------------- caps


async def test_size_cap_stops_a_streamed_page(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"))
    assert fetcher.max_bytes == 5 * 1024 * 1024  # the default
    with pytest.raises(FetchError, match=r"Too big: .*/huge\?mb=8 is larger than the 5,242,880 bytes"):
        await fetcher.fetch(pages.url("/huge?mb=8"))  # chunked: no Content-Length to go by
    small = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1", browse_max_bytes=100_000))
    result = await small.fetch(pages.url("/huge?mb=8"), truncate=True)
    assert result.truncated and len(result.body) == 100_000


async def test_size_cap_trusts_a_declared_length(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"))
    started = time.perf_counter()
    with pytest.raises(FetchError, match="Too big"):
        await fetcher.fetch(pages.url("/huge-declared"))  # says 6 MiB, then stalls
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("path", ["/slow?s=5", "/trickle?s=5"])
async def test_time_cap_covers_the_whole_fetch(pages: PageServer, tmp_path: Path, path: str) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1", browse_timeout_s=0.6))
    started = time.perf_counter()
    with pytest.raises(FetchError, match=r"Timed out: .* within 0.6 s"):
        await fetcher.fetch(pages.url(path))  # /trickle sends bytes every 0.1 s: only a total cap stops it
    assert time.perf_counter() - started < 1.5
    assert Settings.model_fields["browse_timeout_s"].default == 20.0


async def test_http_errors_are_fetch_errors(pages: PageServer, tmp_path: Path) -> None:
    fetcher = GuardedFetcher(settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"))
    with pytest.raises(FetchError, match=r"HTTP error 500 Internal Server Error from http://127\.0\.0\.1"):
        await fetcher.fetch(pages.url("/status/500"))


# ------------------------------------------------------------------------------ DNS rebinding


async def test_the_checked_address_is_the_connected_address() -> None:
    """A resolver that answers a public address first and loopback afterwards (DNS rebinding)
    cannot split check and connection: each connection resolves once, checks, and connects to
    exactly the checked address, never to the name."""
    resolver = ScriptedResolver(["93.184.215.14"], ["127.0.0.1"])
    inner = Recorder(refuse=True)  # no traffic leaves this machine
    backend = GuardedBackend(HostPolicy(), resolver=resolver, inner=inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 80)
    assert resolver.calls == ["rebind.example"]
    assert inner.calls == [("93.184.215.14", 80)]
    with pytest.raises(BlockedAddressError, match=r"rebind\.example: it resolves to 127\.0\.0\.1"):
        await backend.connect_tcp("rebind.example", 80)
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert inner.calls == [("93.184.215.14", 80)]  # the loopback answer was never connected to


async def test_any_bad_address_refuses_the_host(pages: PageServer, tmp_path: Path) -> None:
    resolver = ScriptedResolver(["93.184.215.14", "127.0.0.1"])
    inner = Recorder(refuse=True)
    fetcher = GuardedFetcher(settings_for(tmp_path), resolver=resolver, inner_backend=inner)
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1, a loopback address"):
        await fetcher.fetch(f"http://mixed.example:{pages.port}/article")
    assert inner.calls == []
    assert pages.requests == []


async def test_a_name_is_connected_by_its_checked_address(pages: PageServer, tmp_path: Path) -> None:
    resolver = ScriptedResolver(["127.0.0.1"])
    inner = Recorder()
    fetcher = GuardedFetcher(
        settings_for(tmp_path, browse_allowed_hosts="127.0.0.1"), resolver=resolver, inner_backend=inner
    )
    result = await fetcher.fetch(f"http://pages.example:{pages.port}/headers")
    assert inner.calls == [("127.0.0.1", pages.port)]
    assert (
        json.loads(result.body)["Host"] == f"pages.example:{pages.port}"
    )  # the name still goes to the server
    no_resolver = ScriptedResolver(["8.8.8.8"])
    literal = GuardedFetcher(
        settings_for(tmp_path), resolver=no_resolver, inner_backend=Recorder(refuse=True)
    )
    with pytest.raises(BlockedAddressError):
        await literal.fetch("http://10.0.0.1/")
    assert no_resolver.calls == []  # IP literals are checked as they are


async def test_an_unresolvable_name_is_a_clear_error(tmp_path: Path) -> None:
    async def fails(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    fetcher = GuardedFetcher(settings_for(tmp_path), resolver=fails)
    with pytest.raises(FetchError, match=r"Could not resolve nowhere\.example"):
        await fetcher.fetch("http://nowhere.example/")
