"""The close slip's QR code holds an address a phone can open, never the page's bind address."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.drivers.slip import SlipContent, SlipStatus, status_page_url

BASE = ('state_dir = "state"\n[[registers]]\nstore_code = "0001"\nterminal_no = "01"\n'
        'port = "/dev/null"\n')


def url(address: str, *, slip: str | None = None, public: str | None = None,
        hostname: str = "gw-0001") -> str | None:
    return status_page_url(slip_url=slip, public_url=public, address=address, port=8080,
                           hostname=hostname)


def test_the_settings_come_first() -> None:
    assert url("127.0.0.1", slip="http://shop.example/s", public="http://10.0.0.2:8080"
               ) == "http://shop.example/s"
    assert url("0.0.0.0", public="http://10.0.0.2:8080") == "http://10.0.0.2:8080"


def test_built_from_where_the_page_listens() -> None:
    assert url("0.0.0.0") == "http://gw-0001.local:8080/"
    assert url("::") == "http://gw-0001.local:8080/"
    assert url("0.0.0.0", hostname="gw.shop.lan") == "http://gw.shop.lan:8080/"
    assert url("192.168.1.20") == "http://192.168.1.20:8080/"
    assert url("fd00::20") == "http://[fd00::20]:8080/"
    # only the box itself can open these: no QR rather than a useless one
    for address in ("127.0.0.1", "::1", "localhost"):
        assert url(address) is None
    assert url("0.0.0.0", hostname="localhost") is None


class _Printer:
    def __init__(self) -> None:
        self.slips: list[SlipContent] = []

    def submit_slip(self, content: SlipContent) -> bool:
        self.slips.append(content)
        return True


MakeGateway = Callable[[str], tuple[Gateway, "_Printer"]]


@pytest.fixture()
def make_gateway(tmp_path: Path) -> Iterator[MakeGateway]:
    made: list[Gateway] = []

    def make(extra: str) -> tuple[Gateway, _Printer]:
        cfg = tmp_path / f"gatewayd{len(made)}.toml"
        cfg.write_text(BASE.replace('"state"', f'"state{len(made)}"') + extra,
                       encoding="utf-8")
        settings = load_settings(cfg)
        gateway = Gateway(settings, web_port=0)
        made.append(gateway)
        gateway._start_web()
        assert gateway.web is not None, gateway.errors
        printer = _Printer()
        gateway.printer = printer  # type: ignore[assignment]
        row = SimpleNamespace(business_date=date(2025, 1, 10), gross=1000, tax=90)
        gateway._submit_slip(settings.registers[0], row, 1, SlipStatus.SENT, None, None)
        return gateway, printer

    yield make
    for gateway in made:
        if gateway.web is not None:
            gateway.web.stop()
        gateway.store.close()


def test_slip_setting_wins_over_the_running_page(make_gateway: MakeGateway) -> None:
    _, printer = make_gateway('[slip]\nstatus_url = "http://gw-0001.local:8080/"\n'
                              '[web]\naddress = "127.0.0.1"\n')
    assert printer.slips[0].status_url == "http://gw-0001.local:8080/"


def test_public_url_wins_over_the_running_page(make_gateway: MakeGateway) -> None:
    _, printer = make_gateway('[web]\naddress = "127.0.0.1"\n'
                              'public_url = "http://192.168.1.20:8080"\n')
    assert printer.slips[0].status_url == "http://192.168.1.20:8080"


def test_a_loopback_page_gives_no_qr(make_gateway: MakeGateway) -> None:
    gateway, printer = make_gateway('[web]\naddress = "127.0.0.1"\n')
    assert gateway.web is not None and gateway.web.url.startswith("http://127.0.0.1:")
    assert printer.slips[0].status_url is None


def test_the_built_address_carries_the_scheme_the_page_serves() -> None:
    # beyond loopback the page serves HTTPS by default: a QR code with http:// would only
    # lead the phone to the redirect (or nowhere, on a strict browser)
    assert status_page_url(slip_url=None, public_url=None, address="0.0.0.0", port=8080,
                           hostname="gw-0001", scheme="https") == "https://gw-0001.local:8080/"


def test_setup_slip_addresses_follow_the_pages_tls_rule() -> None:
    from gatewayd.firstboot import page_scheme

    assert page_scheme({}) == "http"  # loopback only: plain HTTP
    assert page_scheme({"address": "0.0.0.0"}) == "https"
    assert page_scheme({"address": "::", "tls": "auto"}) == "https"
    assert page_scheme({"address": "0.0.0.0", "tls": "off"}) == "http"
    assert page_scheme({"address": "127.0.0.1", "tls": "on"}) == "https"
