"""Unit tests of the sync side without the emulator: settings, error parsing, tokens
(httpx.MockTransport), masters resolution and fiscal checks, deal views."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewayd.errors import (
    ConfigError,
    FreeeFixSetting,
    FreeePermission,
    FreeeRateLimited,
    FreeeRefused,
    FreeeRelink,
    FreeeRetryLater,
)
from gatewayd.settings_reader import TableReader
from gatewayd.sync.freee_client import FreeeClient
from gatewayd.sync.freee_errors import (
    FreeeAmbiguous,
    FreeeNotSent,
    FreeeTokenExpired,
    error_from_response,
    error_from_transport,
)
from gatewayd.sync.freee_settings import FreeeSettings, parse_freee
from gatewayd.sync.freee_views import body_matches, deal_view, edited
from gatewayd.sync.masters import Masters
from gatewayd.sync.plan import DealType, DetailLine, PaymentLine, Posting, PostingKind
from gatewayd.sync.tokens import LinkState, TokenManager, TokenRecord

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# -- settings ---------------------------------------------------------------------------------


def test_freee_settings_defaults_are_freee_production() -> None:
    s = parse_freee(TableReader({}, "freee"))
    assert s.api_base_url == "https://api.freee.co.jp"
    assert s.authorize_url == "https://accounts.secure.freee.co.jp/public_api/authorize"
    assert s.redirect_uri() == "urn:ietf:wg:oauth:2.0:oob"
    assert s.company_id is None


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"api_base_url": "http://example.com"}, "freee.api_base_url"),
        ({"redirect": "web"}, "freee.redirect"),
        ({"company_id": 0}, "freee.company_id"),
        ({"client_secret": "a", "client_secret_file": "/x"}, "freee.client_secret_file"),
        ({"clientid": "x"}, "freee.clientid"),
    ],
)
def test_freee_settings_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_freee(TableReader(table, "freee"))
    assert err.value.key == key


def test_client_secret_comes_from_the_systemd_credential_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("from-file\n")
    s = parse_freee(TableReader({"client_secret_file": str(secret_file)}, "freee"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert s.read_client_secret() == "from-file"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "freee-client-secret").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert s.read_client_secret() == "from-systemd"
    assert "from" not in repr(parse_freee(TableReader({"client_secret": "from-x"}, "freee")))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError):
        FreeeSettings().read_client_secret()


# -- error bodies -----------------------------------------------------------------------------


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://api.freee.co.jp/api/1/deals")
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_validation_message_is_kept_first() -> None:
    err = error_from_response(
        response(
            400,
            {
                "status_code": 400,
                "errors": [
                    {"type": "status", "messages": ["不正なリクエストです。"]},
                    {"type": "validation", "messages": ["この日付で有効な税区分ではありません。"]},
                ],
            },
        )
    )
    assert type(err) is FreeeRefused
    assert err.freee_message is not None
    assert err.freee_message.startswith("この日付で有効な税区分ではありません。")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            401,
            {"message": "アクセスする権限がありません", "code": "expired_access_token"},
            FreeeTokenExpired,
        ),
        (401, {"message": "x", "code": "user_do_not_have_permission"}, FreeePermission),
        (
            401,
            {
                "status_code": 401,
                "errors": [
                    {
                        "type": "status",
                        "codes": ["company_not_found"],
                        "messages": ["存在しない事業所です。"],
                    }
                ],
            },
            FreeeFixSetting,
        ),
        (401, {"message": "x", "code": "re_authorization_required"}, FreeeRelink),
        (401, {"error": "invalid_grant", "error_description": "不正"}, FreeeRelink),
        (
            403,
            {
                "message": "このアプリケーションにはアクセス権限がありません。",
                "code": "app_do_not_have_permission",
            },
            FreeePermission,
        ),
        (
            403,
            {"message": "一定期間に過度のアクセスを検知したため、APIの利用を制限しています。"},
            FreeeRateLimited,
        ),
        (
            404,
            {"status_code": 404, "errors": [{"type": "status", "messages": ["なし"]}]},
            FreeeRefused,
        ),
        (
            500,
            {"status_code": 500, "errors": [{"type": "status", "messages": ["エラー"]}]},
            FreeeAmbiguous,
        ),
        (
            503,
            {"status_code": 503, "errors": [{"type": "error", "messages": ["停止中"]}]},
            FreeeAmbiguous,
        ),
    ],
)
def test_both_error_shapes_map_to_the_tree(status: int, body: Any, kind: type) -> None:
    err = error_from_response(response(status, body))
    assert isinstance(err, kind), err
    assert err.status_code == status
    assert err.freee_message


def test_rate_limit_wait_comes_from_freee() -> None:
    reset = (NOW + timedelta(seconds=90)).isoformat()
    err = error_from_response(
        response(429, {"status_code": 429, "meta": {"limit": 10, "reset": reset}}), now=NOW
    )
    assert isinstance(err, FreeeRateLimited) and err.retry_after == pytest.approx(90)
    err = error_from_response(response(429, {}, {"Retry-After": "42"}), now=NOW)
    assert isinstance(err, FreeeRateLimited) and err.retry_after == 42
    err = error_from_response(response(403, {"message": "過度のアクセス"}), now=NOW)
    assert isinstance(err, FreeeRateLimited) and err.retry_after is None  # → 10 minutes


def test_transport_failures_split_by_whether_the_request_left() -> None:
    req = httpx.Request("POST", "https://api.freee.co.jp/api/1/deals")
    assert isinstance(
        error_from_transport(httpx.ConnectError("refused", request=req), "x"), FreeeNotSent
    )
    assert isinstance(
        error_from_transport(httpx.ConnectTimeout("t", request=req), "x"), FreeeNotSent
    )
    for exc in (
        httpx.ReadTimeout("t", request=req),
        httpx.RemoteProtocolError("eof"),
        httpx.WriteError("w", request=req),
        httpx.ReadError("r", request=req),
    ):
        err = error_from_transport(exc, "x")
        assert isinstance(err, FreeeAmbiguous) and not isinstance(err, FreeeNotSent)


# -- tokens -----------------------------------------------------------------------------------

SETTINGS = FreeeSettings(
    api_base_url="https://api.test",
    auth_base_url="https://auth.test",
    client_id="cid",
    client_secret="secret",
    retry_initial=0.0,
)


def linked(state_dir: Path, *, expires_in: float = 60.0) -> TokenManager:
    state_dir.mkdir(parents=True, exist_ok=True)
    return TokenManager(SETTINGS, state_dir, httpx.Client(), clock=lambda: NOW)


def store(
    tm: TokenManager, access: str = "a0", refresh: str = "r0", expires: datetime | None = None
) -> None:
    tm.store_link(
        TokenRecord(
            state=LinkState.LINKED,
            company_id=7,
            company_name=None,
            access_token=access,
            refresh_token=refresh,
            expires_at=expires or NOW + timedelta(seconds=60),
            refreshed_at=NOW - timedelta(hours=5),
            linked_at=NOW - timedelta(days=1),
        )
    )


class FakeFreee:
    """A token endpoint with single-use refresh tokens, and one API endpoint."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.valid_refresh = {"r0"}
        self.refresh_calls = 0
        self.lock = threading.Lock()
        self.api_bearers: list[str] = []
        self.on_disk_at_use: list[str] = []
        self.token_answer: httpx.Response | Exception | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/public_api/token":
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            with self.lock:
                self.refresh_calls += 1
                if isinstance(self.token_answer, Exception):
                    raise self.token_answer
                if self.token_answer is not None:
                    return self.token_answer
                if form.get("refresh_token") not in self.valid_refresh:
                    return httpx.Response(
                        401, json={"error": "invalid_grant", "error_description": "不正"}
                    )
                self.valid_refresh.discard(form["refresh_token"])
                n = self.refresh_calls
                self.valid_refresh.add(f"r{n}")
            return httpx.Response(
                200,
                json={
                    "access_token": f"a{n}",
                    "refresh_token": f"r{n}",
                    "token_type": "bearer",
                    "expires_in": 21600,
                    "scope": "read write",
                    "company_id": "7",
                },
            )
        bearer = request.headers["Authorization"].removeprefix("Bearer ")
        self.api_bearers.append(bearer)
        on_disk = json.loads((self.state_dir / "freee-token.json").read_text())
        self.on_disk_at_use.append(on_disk["access_token"])
        return httpx.Response(200, json={"companies": []})


def manager(tmp_path: Path) -> tuple[TokenManager, FakeFreee, httpx.Client]:
    fake = FakeFreee(tmp_path)
    http = httpx.Client(transport=httpx.MockTransport(fake))
    tm = TokenManager(SETTINGS, tmp_path, http, clock=lambda: NOW)
    store(tm)
    return tm, fake, http


def test_new_pair_is_on_disk_before_first_use(tmp_path: Path) -> None:
    tm, fake, http = manager(tmp_path)
    client = FreeeClient(SETTINGS, tm, http)
    client.companies()  # the access token is near expiry: refreshed first
    assert fake.refresh_calls == 1
    assert fake.api_bearers == ["a1"] and fake.on_disk_at_use == ["a1"]
    path = tmp_path / "freee-token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_threads_share_one_refresh(tmp_path: Path) -> None:
    tm, fake, _http = manager(tmp_path)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(tm.access_token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.refresh_calls == 1 and set(results) == {"a1"}


def test_refused_refresh_marks_the_link_expired_and_stops_calling(tmp_path: Path) -> None:
    tm, fake, _http = manager(tmp_path)
    fake.valid_refresh.clear()
    with pytest.raises(FreeeRelink):
        tm.access_token()
    record = tm.load()
    assert record is not None and record.state is LinkState.EXPIRED
    assert record.expired_reason and record.refresh_token == "r0"
    with pytest.raises(FreeeRelink):
        tm.access_token()
    assert fake.refresh_calls == 1  # no second try with a refused token


def test_wrong_client_secret_is_a_setting_not_an_expired_link(tmp_path: Path) -> None:
    tm, fake, _http = manager(tmp_path)
    fake.token_answer = httpx.Response(
        401, json={"error": "invalid_client", "error_description": "認証失敗"}
    )
    with pytest.raises(FreeeFixSetting):
        tm.access_token()
    record = tm.load()
    assert record is not None and record.state is LinkState.LINKED


def test_lost_refresh_answer_keeps_the_old_pair_and_retries_later(tmp_path: Path) -> None:
    tm, fake, _http = manager(tmp_path)
    fake.token_answer = httpx.ReadTimeout("lost")
    with pytest.raises(FreeeRetryLater):
        tm.access_token()
    record = tm.load()
    assert record is not None and record.refresh_token == "r0" and record.state is LinkState.LINKED
    fake.token_answer = None
    assert tm.access_token() == "a2"  # the same refresh token, presented once more


# -- masters ------------------------------------------------------------------------------------

COMPANY = {
    "id": 7,
    "display_name": "テスト商店",
    "account_items": [
        {"id": 11, "name": "売上高", "categories": []},
        {"id": 12, "name": "雑収入", "categories": []},
    ],
    "items": [{"id": 21, "name": "【POS Regi】現金"}],
    "sections": [{"id": 31, "name": "渋谷店"}],
    "tags": [{"id": 41, "name": "POS"}],
    "partners": [],
    "walletables": [{"id": 51, "name": "現金", "type": "wallet"}],
    "fiscal_years": [
        {
            "start_date": "2025-01-01",
            "end_date": "2025-12-31",
            "is_closed": False,
            "month_end_date": "2025-02-28",
        },
        {
            "start_date": "2024-01-01",
            "end_date": "2024-12-31",
            "is_closed": True,
            "month_end_date": None,
        },
    ],
}
TAXES = [
    {
        "code": 129,
        "name": "sales_with_tax_10",
        "name_ja": "課税売上10%",
        "display_category": "tax_10",
        "available": True,
    },
    {
        "code": 2,
        "name": "non_taxable",
        "name_ja": "対象外",
        "display_category": None,
        "available": True,
    },
    {
        "code": 101,
        "name": "sales_with_tax_8",
        "name_ja": "課税売上8%",
        "display_category": "tax_8",
        "available": False,
    },
]


def posting(
    tax: str = "課税売上10%",
    item: str | None = "【POS Regi】現金",
    section: str | None = "渋谷店",
    vat: int | None = 91,
) -> Posting:
    return Posting(
        ref_number="POS-1-1-20250301-S-CASH",
        kind=PostingKind.DEAL,
        type=DealType.INCOME,
        issue_date=date(2025, 3, 1),
        due_date=None,
        partner=None,
        details=(DetailLine("売上高", tax, 1000, vat, item, section, ("POS",), "店舗1 現金"),),
        payments=(PaymentLine(date(2025, 3, 1), "現金", 1000),),
        transfer=None,
    )


def test_resolve_names_to_ids_with_vat_only_where_taxed() -> None:
    m = Masters(COMPANY, TAXES, NOW)
    body, missing = m.resolve(posting(), company_id=7)
    assert missing == [] and body is not None
    line = body["details"][0]
    assert line == {
        "tax_code": 129,
        "account_item_id": 11,
        "amount": 1000,
        "vat": 91,
        "item_id": 21,
        "section_id": 31,
        "tag_ids": [41],
        "description": "店舗1 現金",
    }
    assert body["payments"] == [
        {
            "date": "2025-03-01",
            "from_walletable_type": "wallet",
            "from_walletable_id": 51,
            "amount": 1000,
        }
    ]
    body, _ = m.resolve(posting(tax="対象外", vat=0), company_id=7)
    assert body is not None and "vat" not in body["details"][0]


def test_missing_names_are_listed_and_unavailable_taxes_do_not_match() -> None:
    m = Masters(COMPANY, TAXES, NOW)
    missing = m.missing_names([posting(tax="課税売上8%", item="【POS Regi】QR", section="新宿店")])
    labels = [x.label() for x in missing]
    assert labels == [
        "税区分「課税売上8%」（利用できない税区分です）",
        "品目「【POS Regi】QR」",
        "部門「新宿店」",
    ]


def test_fiscal_problems() -> None:
    m = Masters(COMPANY, TAXES, NOW)
    assert m.fiscal_problem(date(2025, 3, 1)) is None
    assert "本締め" in (m.fiscal_problem(date(2025, 2, 28)) or "")
    assert "年度締め済み" in (m.fiscal_problem(date(2024, 6, 1)) or "")
    assert "ありません" in (m.fiscal_problem(date(2026, 1, 1)) or "")
    assert m.after_known_years(date(2026, 1, 1)) and not m.after_known_years(date(2025, 6, 1))


# -- views ----------------------------------------------------------------------------------


def freee_deal(**over: Any) -> dict[str, Any]:
    deal = {
        "id": 1,
        "company_id": 7,
        "issue_date": "2025-03-01",
        "type": "income",
        "amount": 1000,
        "ref_number": "R",
        "partner_id": None,
        "status": "unsettled",
        "details": [
            {
                "id": 9,
                "account_item_id": 11,
                "tax_code": 129,
                "amount": 1000,
                "vat": 90,
                "entry_side": "credit",
                "description": "x",
                "tag_ids": [],
            }
        ],
    }
    deal.update(over)
    return deal


def test_settling_in_freee_is_not_an_edit_but_a_changed_line_is() -> None:
    sent = deal_view(freee_deal())
    settled = deal_view(
        freee_deal(
            payments=[
                {
                    "id": 5,
                    "date": "2025-04-01",
                    "from_walletable_type": "bank_account",
                    "from_walletable_id": 3,
                    "amount": 1000,
                }
            ]
        )
    )
    assert not edited(sent, settled)
    changed = freee_deal()
    changed["details"][0]["description"] = "修正"
    assert edited(sent, deal_view(changed))


def test_body_matches_ignores_vat_freee_computed() -> None:
    body = {
        "issue_date": "2025-03-01",
        "type": "income",
        "ref_number": "R",
        "details": [{"account_item_id": 11, "tax_code": 129, "amount": 1000, "description": "x"}],
    }
    assert body_matches("deal", body, freee_deal())
    body["details"][0]["vat"] = 91
    assert not body_matches("deal", body, freee_deal())
