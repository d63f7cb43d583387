"""Templates: how one register model prints its Z report (TOML, shipped in etc/templates/).

Pure: ``parse_template(text, source)`` reads the TOML text. A template says which jobs are Z
reports (and which are X reports, reprints or training prints, to be ignored) and where each
field is: one regular expression per field, matched against each decoded line (NFKC-folded),
the first matching line wins. Format and field names: docs/tap.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatewayd.errors import ConfigError
from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Method, TaxClass
from gatewayd.settings_reader import TableReader

# field name -> the named group its pattern must have
SCALAR_FIELDS: dict[str, str] = {
    "business_date": "year",
    "z_counter": "value",
    "store": "value",
    "terminal": "value",
    "receipt_count": "value",
    "gross": "amount",
    "returns": "amount",
    "voids": "amount",
    "cash_in": "amount",
    "cash_out": "amount",
    "cash_difference": "amount",
}
RATE_FIELDS: tuple[str, ...] = tuple(
    f"{part}.{c.value}" for c in TAX_CLASS_ORDER for part in ("base", "tax")
)
METHOD_FIELDS: tuple[str, ...] = tuple(f"method.{m.value}" for m in METHOD_ORDER)
ALL_FIELDS: tuple[str, ...] = (*SCALAR_FIELDS, *RATE_FIELDS, *METHOD_FIELDS)
ALWAYS_REQUIRED = ("business_date", "z_counter", "gross")
RATE_PERCENT: dict[TaxClass, int] = {
    TaxClass.STANDARD: 10,
    TaxClass.REDUCED: 8,
    TaxClass.EXEMPT: 0,
    TaxClass.OUT_OF_SCOPE: 0,
}
KINDS = ("training", "reprint", "x_report", "reclose", "z_report")


def group_of(name: str) -> str:
    return SCALAR_FIELDS.get(name, "amount")


def rate_field(part: str, cls: TaxClass) -> str:
    return f"{part}.{cls.value}"


def method_field(method: Method) -> str:
    return f"method.{method.value}"


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template. ``fields`` keeps the order of the file."""

    name: str
    description: str
    always_kanji: bool
    tax_included: bool
    tax_tolerance: int | None
    markers: Mapping[str, tuple[re.Pattern[str], ...]]
    fields: Mapping[str, re.Pattern[str]]
    optional: frozenset[str]
    source: str

    def required(self, name: str) -> bool:
        return name in self.fields and name not in self.optional


def _compile(reader: TableReader, name: str, pattern: str, group: str | None) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"not a regular expression ({exc})", key=reader.key(name), value=pattern
        ) from exc
    if group is not None and group not in compiled.groupindex:
        raise ConfigError(
            "pattern has no named group",
            key=reader.key(name),
            value=pattern,
            expected=f"a group (?P<{group}>…)",
        )
    if group == "year" and not {"month", "day"} <= set(compiled.groupindex):
        raise ConfigError(
            "pattern has no month or day group",
            key=reader.key(name),
            value=pattern,
            expected="groups (?P<year>…), (?P<month>…) and (?P<day>…)",
        )
    return compiled


def parse_template(text: str, source: str = "template") -> Template:
    """Read a template's TOML text; a ConfigError names the key and what is expected."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not TOML ({exc})") from exc
    top = TableReader(data, source)
    name = top.str("name", required=True, pattern=r"[A-Za-z0-9_.-]+")
    description = top.str("description", "")
    always_kanji = top.bool("always_kanji", False)
    tax_included = top.bool("tax_included", True)
    tax_tolerance = top.opt_int("tax_tolerance", minimum=0)
    optional = top.str_list("optional")
    match = top.table("match")
    markers: dict[str, tuple[re.Pattern[str], ...]] = {}
    for kind in KINDS:
        patterns = match.str_list(kind)
        markers[kind] = tuple(_compile(match, kind, p, None) for p in patterns)
    match.finish()
    if not markers["z_report"]:
        raise ConfigError("missing", key=match.key("z_report"), expected="a list of patterns")
    fields_reader = top.table("fields")
    fields: dict[str, re.Pattern[str]] = {}
    for key in list(fields_reader.keys()):
        if key not in ALL_FIELDS:
            continue
        fields[key] = _compile(fields_reader, key, fields_reader.str(key), group_of(key))
    fields_reader.finish()
    for required in ALWAYS_REQUIRED:
        if required not in fields:
            raise ConfigError("missing", key=fields_reader.key(required), expected="a pattern")
    for opt in optional:
        if opt not in ALL_FIELDS:
            raise ConfigError(
                "unknown field", key=top.key("optional"), value=opt,
                expected="field names of [fields]",
            )
    top.finish()
    return Template(
        name=name,
        description=description,
        always_kanji=always_kanji,
        tax_included=tax_included,
        tax_tolerance=tax_tolerance,
        markers=markers,
        fields=fields,
        optional=frozenset(optional) - set(ALWAYS_REQUIRED),
        source=source,
    )


def load_template(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the template: {exc.strerror}", key=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", key=str(path)) from None
    return parse_template(text, str(path))
