"""The ``[mapping]`` table: how a day's records become freee postings (freee-mapping.md §2).

``parse_mapping(reader)`` reads the table (every key optional, unknown keys rejected) into a
frozen ``MappingSettings`` holding every setting with its default; ``for_register(reg)``
applies one register's ``store_name`` / ``section`` / ``tags`` overrides. Masters are named,
not resolved: whether they exist in the linked company is checked later (doctor, status page).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from gatewayd.errors import ConfigError
from gatewayd.protocol.records import (
    DIRECTION_ORDER,
    METHOD_ORDER,
    TAX_CLASS_ORDER,
    Direction,
    Method,
    TaxClass,
)
from gatewayd.settings_reader import PartTables, TableReader
from gatewayd.sync.plan import Granularity, PostingKind

UNSETTLED = "unsettled"
WALLETABLE_PREFIX = "walletable:"
STORE_CODE_PLACEHOLDER = "{store_code}"

DEFAULT_METHOD_LABELS: Mapping[Method, str] = MappingProxyType(
    {
        Method.CASH: "現金",
        Method.CREDIT: "クレジット",
        Method.EMONEY: "電子マネー",
        Method.QR: "QRコード決済",
        Method.GIFT: "商品券",
        Method.POINT: "ポイント",
        Method.OTHER: "その他",
    }
)
DEFAULT_TAX_NAMES: Mapping[TaxClass, str] = MappingProxyType(
    {
        TaxClass.STANDARD: "課税売上10%",
        TaxClass.REDUCED: "課税売上8%（軽）",
        TaxClass.EXEMPT: "非課売上",  # freee's own name of code 23 (sales_with_no_tax)
        TaxClass.OUT_OF_SCOPE: "対象外",
    }
)
DEFAULT_MOVEMENT_ACCOUNTS: Mapping[Direction, str] = MappingProxyType(
    {Direction.IN: "仮受金", Direction.OUT: "仮払金"}
)


class RegisterLabels(Protocol):
    """A register's per-store overrides (``gatewayd.config.RegisterSettings`` is one)."""

    @property
    def store_name(self) -> str | None: ...

    @property
    def section(self) -> str | None: ...

    @property
    def tags(self) -> tuple[str, ...] | None: ...


@dataclass(frozen=True, slots=True)
class MethodRule:
    """Per payment method: settlement (None = 未決済, else the 口座 name), 取引先, due days."""

    walletable: str | None = None
    partner: str | None = None
    due_days: int | None = None

    @property
    def settled(self) -> bool:
        return self.walletable is not None


@dataclass(frozen=True, slots=True)
class MovementRule:
    """How one cash movement posts: a deal (account + 税区分) or a transfer (口座)."""

    kind: PostingKind
    account: str | None = None
    tax: str | None = None
    walletable: str | None = None

    @classmethod
    def deal(cls, account: str, tax: str) -> MovementRule:
        return cls(PostingKind.DEAL, account=account, tax=tax)

    @classmethod
    def transfer(cls, walletable: str) -> MovementRule:
        return cls(PostingKind.TRANSFER, walletable=walletable)


def _default_movement_defaults() -> Mapping[Direction, MovementRule]:
    ex = DEFAULT_TAX_NAMES[TaxClass.OUT_OF_SCOPE]
    return MappingProxyType(
        {d: MovementRule.deal(DEFAULT_MOVEMENT_ACCOUNTS[d], ex) for d in DIRECTION_ORDER}
    )


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """Every setting of freee-mapping.md §2, with its default.

    ``methods`` holds the configured methods' rules; ``method_rule(m)`` gives every method's
    (CASH settles into ``cash_walletable`` unless configured otherwise). ``movement_defaults``
    holds IN and OUT. ``store_name`` may contain
    ``{store_code}``; use ``store_label(store_code)``.
    """

    granularity: Granularity = Granularity.SUMMARY
    sales_account: str = "売上高"
    item_prefix: str = "【POS Regi】"
    store_name: str = "店舗{store_code}"
    section: str | None = None
    tags: tuple[str, ...] = ()
    cash_walletable: str = "現金"
    cash_over_account: str = "雑収入"
    cash_short_account: str = "雑損失"
    method_labels: Mapping[Method, str] = field(default_factory=lambda: DEFAULT_METHOD_LABELS)
    tax_names: Mapping[TaxClass, str] = field(default_factory=lambda: DEFAULT_TAX_NAMES)
    methods: Mapping[Method, MethodRule] = field(default_factory=lambda: MappingProxyType({}))
    movements: Mapping[str, MovementRule] = field(default_factory=lambda: MappingProxyType({}))
    movement_defaults: Mapping[Direction, MovementRule] = field(
        default_factory=_default_movement_defaults
    )

    def store_label(self, store_code: str) -> str:
        """The store name used in descriptions, ``{store_code}`` filled in."""
        return self.store_name.replace(STORE_CODE_PLACEHOLDER, store_code)

    def item_name(self, method: Method) -> str:
        """The 品目 of a method's sales lines: prefix + method label."""
        return self.item_prefix + self.method_labels[method]

    @property
    def ex_tax_name(self) -> str:
        return self.tax_names[TaxClass.OUT_OF_SCOPE]

    def method_rule(self, method: Method) -> MethodRule:
        """The configured rule, else the default: CASH settles into the cash walletable,
        every other method stays unsettled."""
        rule = self.methods.get(method)
        if rule is not None:
            return rule
        return MethodRule(walletable=self.cash_walletable if method is Method.CASH else None)

    def settlement_walletable(self, method: Method) -> str | None:
        """The 口座 a method settles into, or None when it stays unsettled."""
        return self.method_rule(method).walletable

    def movement_rule(self, reason_code: str, direction: Direction) -> MovementRule:
        """The rule for a movement: its reason_code's, else its direction's default."""
        rule = self.movements.get(reason_code)
        return rule if rule is not None else self.movement_defaults[direction]

    def for_register(self, reg: RegisterLabels) -> MappingSettings:
        """These settings with a register's store_name / section / tags overrides applied."""
        return self.with_overrides(store_name=reg.store_name, section=reg.section, tags=reg.tags)

    def with_overrides(
        self,
        *,
        store_name: str | None = None,
        section: str | None = None,
        tags: tuple[str, ...] | None = None,
    ) -> MappingSettings:
        """Replace the per-store settings that are given (None keeps the mapping's)."""
        return replace(
            self,
            store_name=self.store_name if store_name is None else store_name,
            section=self.section if section is None else section,
            tags=self.tags if tags is None else tuple(tags),
        )

    def names_used(self) -> dict[str, set[str]]:
        """Every master these settings name, by kind (for doctor / name resolution).

        Kinds: ``account_items``, ``taxes``, ``items``, ``sections``, ``tags``,
        ``partners``, ``walletables``. Items are the prefix + each method label.
        """
        used: dict[str, set[str]] = {
            "account_items": {self.sales_account, self.cash_over_account, self.cash_short_account},
            "taxes": set(self.tax_names.values()),
            "items": {self.item_name(m) for m in METHOD_ORDER},
            "sections": set() if self.section is None else {self.section},
            "tags": set(self.tags),
            "partners": set(),
            "walletables": {self.cash_walletable},
        }
        for rule in (self.method_rule(m) for m in METHOD_ORDER):
            if rule.walletable is not None:
                used["walletables"].add(rule.walletable)
            if rule.partner is not None:
                used["partners"].add(rule.partner)
        for mv in (*self.movements.values(), *self.movement_defaults.values()):
            if mv.account is not None:
                used["account_items"].add(mv.account)
            if mv.tax is not None:
                used["taxes"].add(mv.tax)
            if mv.walletable is not None:
                used["walletables"].add(mv.walletable)
        return used


# ---------------------------------------------------------------------------------------------
# parsing


def _enum_keys(reader: TableReader, allowed: tuple[str, ...], what: str) -> None:
    """Reject a key that is not one of ``allowed`` with a message naming the allowed set."""
    for key in sorted(reader.keys()):
        if key not in allowed:
            raise ConfigError(
                f"unknown {what}",
                key=reader.key(key),
                value=key,
                expected="one of " + ", ".join(allowed),
            )


def _labels(
    reader: TableReader, base: Mapping[Any, str], order: tuple[Any, ...], what: str
) -> Mapping[Any, str]:
    _enum_keys(reader, tuple(k.value for k in order), what)
    out = dict(base)
    for k in order:
        value = reader.opt_str(k.value)
        if value is not None:
            out[k] = value
    reader.finish()
    return MappingProxyType(out)


def _settlement(reader: TableReader, default: str | None) -> str | None:
    """``unsettled`` → None; ``walletable:<口座名>`` → the name."""
    if not reader.has("settlement"):
        return default
    value = reader.raw("settlement")
    if isinstance(value, str):
        if value == UNSETTLED:
            return None
        if value.startswith(WALLETABLE_PREFIX):
            name = value[len(WALLETABLE_PREFIX) :].strip()
            if name:
                return name
    raise ConfigError(
        "wrong settlement",
        key=reader.key("settlement"),
        value=value,
        expected='"unsettled" or "walletable:<口座名>"',
    )


def _method_rules(reader: TableReader, cash_walletable: str) -> Mapping[Method, MethodRule]:
    _enum_keys(reader, tuple(m.value for m in METHOD_ORDER), "payment method")
    rules: dict[Method, MethodRule] = {}
    for method in METHOD_ORDER:
        default_wallet = cash_walletable if method is Method.CASH else None
        if not reader.has(method.value):
            continue
        sub = reader.table(method.value)
        rules[method] = MethodRule(
            walletable=_settlement(sub, default_wallet),
            partner=sub.opt_str("partner"),
            due_days=sub.opt_int("due_days", minimum=0, maximum=3660),
        )
        sub.finish()
    reader.finish()
    return MappingProxyType(rules)


_KINDS = tuple(k.value for k in PostingKind)


def _movement_rule(
    reader: TableReader,
    ex_tax: str,
    cash_walletable: str,
    default_account: str | None,
) -> MovementRule:
    """One movement rule; ``default_account`` (movement_defaults only) fills a missing account."""
    kind_text = reader.opt_str("kind")
    if kind_text is not None and kind_text not in _KINDS:
        raise ConfigError(
            "unknown movement kind",
            key=reader.key("kind"),
            value=kind_text,
            expected="one of " + ", ".join(_KINDS),
        )
    has_deal_keys = reader.has("account") or reader.has("tax")
    has_transfer_keys = reader.has("walletable")
    if kind_text is None:
        if has_deal_keys and has_transfer_keys:
            raise ConfigError(
                "both deal keys (account, tax) and a transfer key (walletable)",
                key=reader.key("walletable"),
                value=reader.raw("walletable"),
                expected="either account (+ tax) for a deal or walletable for a transfer",
            )
        if has_transfer_keys:
            kind = PostingKind.TRANSFER
        elif has_deal_keys or default_account is not None:
            kind = PostingKind.DEAL
        else:
            raise ConfigError(
                "empty movement rule",
                key=reader.key("account"),
                expected="account (+ tax) for a deal or walletable for a transfer",
            )
    else:
        kind = PostingKind(kind_text)
    if kind is PostingKind.DEAL:
        if has_transfer_keys:
            raise ConfigError(
                "a deal rule takes no walletable",
                key=reader.key("walletable"),
                value=reader.raw("walletable"),
                expected='account and tax only when kind = "deal"',
            )
        if default_account is None:
            account = reader.str("account", required=True)
        else:
            account = reader.str("account", default_account)
        if account == cash_walletable:
            raise ConfigError(
                "a deal line may not be on the cash account (freee refuses it)",
                key=reader.key("account"),
                value=account,
                expected='another account, or kind = "transfer" with a walletable',
            )
        rule = MovementRule.deal(account, reader.str("tax", ex_tax))
    else:
        for bad in ("account", "tax"):
            if reader.has(bad):
                raise ConfigError(
                    "a transfer rule takes no " + bad,
                    key=reader.key(bad),
                    value=reader.raw(bad),
                    expected='walletable only when kind = "transfer"',
                )
        walletable = reader.str("walletable", required=True)
        if walletable == cash_walletable:
            raise ConfigError(
                "a transfer needs a walletable other than the cash walletable",
                key=reader.key("walletable"),
                value=walletable,
                expected=f"a 口座 other than {cash_walletable!r}",
            )
        rule = MovementRule.transfer(walletable)
    reader.finish()
    return rule


_REASON_CODE = re.compile(r"[^\x00-\x1f\x7f]+")


def _movements(
    reader: TableReader, ex_tax: str, cash_walletable: str
) -> Mapping[str, MovementRule]:
    rules: dict[str, MovementRule] = {}
    for code in list(reader.keys()):
        if _REASON_CODE.fullmatch(code) is None:
            raise ConfigError(
                "not a reason_code",
                key=reader.key(code),
                value=code,
                expected="a reason_code: text without control characters",
            )
        rules[code] = _movement_rule(reader.table(code), ex_tax, cash_walletable, None)
    reader.finish()
    return MappingProxyType(rules)


def _movement_defaults(
    reader: TableReader, ex_tax: str, cash_walletable: str
) -> Mapping[Direction, MovementRule]:
    _enum_keys(reader, tuple(d.value for d in DIRECTION_ORDER), "direction")
    rules: dict[Direction, MovementRule] = {}
    for d in DIRECTION_ORDER:
        account = DEFAULT_MOVEMENT_ACCOUNTS[d]
        if reader.has(d.value):
            rules[d] = _movement_rule(reader.table(d.value), ex_tax, cash_walletable, account)
        else:
            rules[d] = MovementRule.deal(account, ex_tax)
    reader.finish()
    return MappingProxyType(rules)


def parse_mapping(reader: TableReader) -> MappingSettings:
    """Read the ``[mapping]`` table; a wrong key or value is a ``ConfigError`` naming it."""
    granularity = Granularity(
        reader.str("granularity", Granularity.SUMMARY.value, choices=[g.value for g in Granularity])
    )
    cash_walletable = reader.str("cash_walletable", "現金")
    tax_names = _labels(reader.table("tax_names"), DEFAULT_TAX_NAMES, TAX_CLASS_ORDER, "tax class")
    method_labels = _labels(
        reader.table("method_labels"), DEFAULT_METHOD_LABELS, METHOD_ORDER, "payment method"
    )
    ex_tax = tax_names[TaxClass.OUT_OF_SCOPE]
    settings = MappingSettings(
        granularity=granularity,
        sales_account=reader.str("sales_account", "売上高"),
        item_prefix=reader.str("item_prefix", "【POS Regi】"),
        store_name=reader.str("store_name", "店舗{store_code}"),
        section=reader.opt_str("section"),
        tags=reader.str_list("tags"),
        cash_walletable=cash_walletable,
        cash_over_account=reader.str("cash_over_account", "雑収入"),
        cash_short_account=reader.str("cash_short_account", "雑損失"),
        method_labels=method_labels,
        tax_names=tax_names,
        methods=_method_rules(reader.table("methods"), cash_walletable),
        movements=_movements(reader.table("movements"), ex_tax, cash_walletable),
        movement_defaults=_movement_defaults(
            reader.table("movement_defaults"), ex_tax, cash_walletable
        ),
    )
    reader.finish()
    return settings


def mapping_from_table(data: object) -> MappingSettings:
    """Parse a raw ``[mapping]`` table (None: all defaults)."""
    return parse_mapping(TableReader({} if data is None else data, "mapping"))


def mapping_from_settings(settings: PartTables) -> MappingSettings:
    """The mapping of a loaded gateway configuration (``Settings.extra['mapping']``)."""
    return mapping_from_table(settings.extra.get("mapping"))
