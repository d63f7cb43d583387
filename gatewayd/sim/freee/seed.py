"""The seed: a realistic 法人 with the masters a shop has, and a second company.

Pure data. Ids are handed out by the store's counters in a fixed order, so a fresh state
(or a reset) always yields the same ids; tests should still resolve masters by name, as
the gateway does (freee's ids differ per company).

Tax codes and names are freee's (notes/freee-api.md §3, confirmed by real dumps of
``GET /api/1/taxes/companies``). Note that freee calls code 23 ``非課売上`` (there is no
tax named 非課税売上). Account category id 36 (現金・預金, 法人) is freee's; the other
category ids are the emulator's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAIN_COMPANY_ID = 3_100_001
SECOND_COMPANY_ID = 3_100_002
USER_ID = 5_000_001
USER_EMAIL = "owner@sample-shoten.example.jp"

CASH_CATEGORY_ID = 36  # 現金・預金 (法人), freee news/5930

# Counter start values: ids above 2**31 for deals and their lines catch int32 bugs early.
ID_STARTS = {
    "account_item": 700_000_001,
    "walletable": 800_000_001,
    "fiscal_year": 900_000_001,
    "section": 910_000_001,
    "tag": 920_000_001,
    "partner": 930_000_001,
    "item": 940_000_001,
    "deal": 2_200_000_001,
    "detail": 4_300_000_001,
    "payment": 5_400_000_001,
    "transfer": 3_300_000_001,
}


@dataclass(frozen=True)
class TaxSeed:
    code: int
    name: str
    name_ja: str
    display_category: str | None
    available: bool
    valid_from: str | None = None  # first issue_date the code may be used on
    valid_to: str | None = None  # last issue_date the code may be used on

    @property
    def rate(self) -> int:
        """Percent of consumption tax, 0 for codes that carry none."""
        if self.display_category is None:
            return 0
        return {"tax_5": 5, "tax_8": 8, "tax_r8": 8, "tax_10": 10}.get(
            self.display_category.split("_e")[0], 0
        )


TAXES: tuple[TaxSeed, ...] = (
    TaxSeed(2, "non_taxable", "対象外", None, True),
    TaxSeed(21, "sales_with_tax", "課税売上", "tax_5", True, None, "2014-03-31"),
    TaxSeed(22, "duty_free_sales", "輸出売上", None, False),
    TaxSeed(23, "sales_with_no_tax", "非課売上", None, True),
    TaxSeed(34, "purchase_with_tax", "課対仕入", "tax_5", True, None, "2014-03-31"),
    TaxSeed(37, "purchase_no_tax", "非課仕入", None, True),
    TaxSeed(101, "sales_with_tax_8", "課税売上8%", "tax_8", True, "2014-04-01", "2019-09-30"),
    TaxSeed(108, "purchase_with_tax_8", "課対仕入8%", "tax_8", True, "2014-04-01", "2019-09-30"),
    TaxSeed(129, "sales_with_tax_10", "課税売上10%", "tax_10", True, "2019-10-01"),
    TaxSeed(136, "purchase_with_tax_10", "課対仕入10%", "tax_10", True, "2019-10-01"),
    TaxSeed(143, "return_of_sales_with_tax_10", "課税売返10%", "tax_10", True, "2019-10-01"),
    TaxSeed(156, "sales_with_tax_reduced_8", "課税売上8%（軽）", "tax_r8", True, "2019-10-01"),
    TaxSeed(163, "purchase_with_tax_reduced_8", "課対仕入8%（軽）", "tax_r8", True, "2019-10-01"),
)

NO_TAX_CODES = frozenset(t.code for t in TAXES if t.display_category is None)
# 税区分 a 現金・預金 line may carry (news/5930: 対象外/未選択/不課税); 0 is 未選択.
CASH_LINE_TAX_CODES = frozenset({0, 2})


@dataclass(frozen=True)
class AccountSeed:
    name: str
    category: str
    category_id: int
    categories: tuple[str, ...]
    tax_code: int
    group_name: str
    shortcut: str | None = None
    shortcut_num: str | None = None
    walletable: str | None = None  # name of the walletable this account item stands for


ACCOUNT_ITEMS: tuple[AccountSeed, ...] = (
    AccountSeed("現金", "現金・預金", CASH_CATEGORY_ID, ("資産", "流動資産", "現金・預金"), 2,
                "現金及び預金", "GENKIN", "111", walletable="現金"),
    AccountSeed("普通預金", "現金・預金", CASH_CATEGORY_ID, ("資産", "流動資産", "現金・預金"), 2,
                "現金及び預金", "FUTSUU", "131", walletable="普通預金"),
    AccountSeed("売掛金", "売上債権", 37, ("資産", "流動資産", "売上債権"), 2, "売上債権",
                "URIKAKE", "135"),
    AccountSeed("仮払金", "他流動資産", 40, ("資産", "流動資産", "他流動資産"), 2, "その他流動資産",
                "KARIBARAI", "160"),
    AccountSeed("買掛金", "仕入債務", 47, ("負債", "流動負債", "仕入債務"), 2, "仕入債務",
                "KAIKAKE", "312"),
    AccountSeed("未払金", "他流動負債", 49, ("負債", "流動負債", "他流動負債"), 2, "その他流動負債",
                "MIBARAI", "314"),
    AccountSeed("仮受金", "他流動負債", 49, ("負債", "流動負債", "他流動負債"), 2, "その他流動負債",
                "KARIUKE", "328"),
    AccountSeed("役員借入金", "他流動負債", 49, ("負債", "流動負債", "他流動負債"), 2,
                "その他流動負債", "YAKUIN", "331"),
    AccountSeed("売上高", "売上高", 63, ("損益", "営業損益", "売上高"), 129, "売上高",
                "URIAGE", "511"),
    AccountSeed("仕入高", "売上原価", 64, ("損益", "営業損益", "売上原価"), 136, "売上原価",
                "SHIIRE", "611"),
    AccountSeed("消耗品費", "経費", 68, ("損益", "営業損益", "販売管理費"), 136, "販売管理費",
                "SHOMOU", "732"),
    AccountSeed("通信費", "経費", 68, ("損益", "営業損益", "販売管理費"), 136, "販売管理費",
                "TSUUSHIN", "726"),
    AccountSeed("支払手数料", "経費", 68, ("損益", "営業損益", "販売管理費"), 136, "販売管理費",
                "TESUURYOU", "745"),
    AccountSeed("雑費", "経費", 68, ("損益", "営業損益", "販売管理費"), 136, "販売管理費",
                "ZAPPI", "799"),
    AccountSeed("雑収入", "営業外収益", 70, ("損益", "営業外損益", "営業外収益"), 2, "営業外収益",
                "ZATSUSHUU", "830"),
    AccountSeed("雑損失", "営業外費用", 72, ("損益", "営業外損益", "営業外費用"), 2, "営業外費用",
                "ZATSUSON", "850"),
)


@dataclass(frozen=True)
class WalletableSeed:
    name: str
    type: str
    bank_id: int | None = None


@dataclass(frozen=True)
class CompanySeed:
    id: int
    role: str
    profile: dict[str, Any]
    fiscal_years: tuple[dict[str, Any], ...]
    walletables: tuple[WalletableSeed, ...]
    sections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    partners: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _fiscal_year(start: str, end: str) -> dict[str, Any]:
    return {
        "start_date": start,
        "end_date": end,
        "is_closed": False,
        "month_end_date": None,
        "temp_month_end_date": None,
        "use_industry_template": False,
        "indirect_write_off_method": False,
        "depreciation_record_method": 0,
        "tax_method": 2,  # 本則課税
        "sales_tax_business_code": 0,
        "tax_fraction": 0,  # 切り捨て
        "tax_account_method": 0,  # 税込経理
        "return_code": 0,
    }


def _profile(name: str, kana: str, corporate_number: str, company_number: str) -> dict[str, Any]:
    return {
        "name": name,
        "name_kana": kana,
        "display_name": name,
        "tax_at_source_calc_type": 0,
        "contact_name": "店主 太郎",
        "head_count": 4,
        "corporate_number": corporate_number,
        "txn_number_format": "not_used",
        "private_settlement": False,
        "minus_format": 0,
        "org_code": 1,  # 法人
        "company_number": company_number,
        "phone1": "03-1234-5678",
        "phone2": None,
        "fax": None,
        "zipcode": "150-0002",
        "prefecture_code": 12,  # 東京都
        "street_name1": "渋谷区渋谷1-2-3",
        "street_name2": "サンプルビル1F",
        "invoice_layout": "default_classic",
        "amount_fraction": 0,
        "use_partner_code": False,
        "industry_class": "retail_wholesale",
        "industry_code": "other_store",
        "workflow_setting": "disable",
    }


COMPANIES: tuple[CompanySeed, ...] = (
    CompanySeed(
        id=MAIN_COMPANY_ID,
        role="admin",
        profile=_profile(
            "株式会社サンプル商店", "カブシキガイシャサンプルショウテン", "1011001012345",
            "2468-1357-9001",
        ),
        # Calendar fiscal years, both open: business dates in 2025 and 2026 post by default.
        fiscal_years=(
            _fiscal_year("2025-01-01", "2025-12-31"),
            _fiscal_year("2026-01-01", "2026-12-31"),
        ),
        walletables=(WalletableSeed("現金", "wallet"), WalletableSeed("普通預金", "bank_account")),
        sections=("渋谷店", "新宿店"),
        tags=("POS",),
        partners=("カード会社", "QR決済事業者"),
        items=("店頭販売",),
    ),
    CompanySeed(
        id=SECOND_COMPANY_ID,
        role="read_only",
        profile=_profile(
            "合同会社サンプル閲覧", "ゴウドウガイシャサンプルエツラン", "2011003054321",
            "1357-2468-9002",
        ),
        fiscal_years=(
            _fiscal_year("2025-01-01", "2025-12-31"),
            _fiscal_year("2026-01-01", "2026-12-31"),
        ),
        walletables=(WalletableSeed("現金", "wallet"), WalletableSeed("普通預金", "bank_account")),
    ),
)

USER_PROFILE: dict[str, Any] = {
    "id": USER_ID,
    "email": USER_EMAIL,
    "display_name": "店主 太郎",
    "first_name": "太郎",
    "last_name": "店主",
    "first_name_kana": "タロウ",
    "last_name_kana": "テンシュ",
}
