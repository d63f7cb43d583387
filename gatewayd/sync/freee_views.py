"""Comparable views of freee's deals and transfers, and the matching rules of sections 6–7.

A *view* keeps what the gateway controls of a deal or transfer — type, dates, partner,
ref_number, lines, payments — in a canonical order, so two views are equal exactly when freee
holds the same posting. Views are stored in the outbox after each send; a later view that
differs means someone edited the posting in freee since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gatewayd.sync.masters import Masters

View = dict[str, Any]

_LINE_KEYS = ("account_item_id", "tax_code", "amount", "vat", "item_id", "section_id")


def _line(d: Mapping[str, Any]) -> dict[str, Any]:
    line = {k: d.get(k) for k in _LINE_KEYS}
    line["tag_ids"] = sorted(int(t) for t in d.get("tag_ids") or [])
    line["description"] = d.get("description") or ""
    return line


def _line_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(str(line.get(k)) for k in (*_LINE_KEYS, "tag_ids", "description"))


def _payment(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "date": str(p.get("date"))[:10],
        "from_walletable_type": p.get("from_walletable_type"),
        "from_walletable_id": p.get("from_walletable_id"),
        "amount": p.get("amount"),
    }


def _payment_key(p: Mapping[str, Any]) -> tuple[str, ...]:
    keys = ("date", "from_walletable_type", "from_walletable_id", "amount")
    return tuple(str(p.get(k)) for k in keys)


def deal_view(deal: Mapping[str, Any]) -> View:
    """What the gateway controls of a freee deal (a POST/PUT/GET answer)."""
    lines = sorted((_line(d) for d in deal.get("details") or []), key=_line_key)
    payments = sorted((_payment(p) for p in deal.get("payments") or []), key=_payment_key)
    return {
        "kind": "deal",
        "type": deal.get("type"),
        "issue_date": str(deal.get("issue_date"))[:10],
        "due_date": None if not deal.get("due_date") else str(deal.get("due_date"))[:10],
        "partner_id": deal.get("partner_id"),
        "ref_number": deal.get("ref_number"),
        "amount": deal.get("amount"),
        "details": lines,
        "payments": payments,
    }


def transfer_view(transfer: Mapping[str, Any]) -> View:
    """What the gateway controls of a freee transfer."""
    rows = transfer.get("to_walletables") or []
    if not rows and transfer.get("to_walletable_id") is not None:
        rows = [
            {
                "type": transfer.get("to_walletable_type"),
                "id": transfer.get("to_walletable_id"),
                "amount": transfer.get("amount"),
                "description": transfer.get("description"),
            }
        ]
    to = sorted(
        (
            {
                "type": r.get("type"),
                "id": r.get("id"),
                "amount": r.get("amount"),
                "description": r.get("description") or "",
            }
            for r in rows
        ),
        key=lambda r: (str(r["type"]), str(r["id"]), str(r["amount"]), r["description"]),
    )
    return {
        "kind": "transfer",
        "date": str(transfer.get("date"))[:10],
        "from_walletable_type": transfer.get("from_walletable_type"),
        "from_walletable_id": transfer.get("from_walletable_id"),
        "to": to,
    }


def view_of(kind: str, obj: Mapping[str, Any]) -> View:
    return transfer_view(obj) if kind == "transfer" else deal_view(obj)


def edited(stored: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Did someone change the posting in freee since the gateway stored ``stored``?

    Settling an unsettled deal in freee (消込: payments added to a deal sent without any) is
    the accountant's normal follow-up, not an edit of the posting: it is ignored here.
    """
    if stored.get("kind") != current.get("kind"):
        return True
    if stored.get("kind") == "deal" and not stored.get("payments"):
        return _without(stored, "payments") != _without(current, "payments")
    return dict(stored) != dict(current)


def settled_in_freee(stored: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """freee holds payments the gateway did not send (a 消込 done in freee)."""
    return (
        stored.get("kind") == "deal"
        and not stored.get("payments")
        and bool(current.get("payments"))
    )


def _without(view: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != key}


def body_matches(kind: str, body: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Does freee's ``obj`` hold what ``body`` (a POST/PUT body) asks for?

    ``vat`` is compared only where the body sends it (elsewhere freee computes it).
    """
    if kind == "transfer":
        want = transfer_view(body)
        have = transfer_view(obj)
        return want == have
    have = deal_view(obj)
    for key in ("type", "issue_date", "ref_number"):
        if str(body.get(key)) != str(have.get(key)):
            return False
    if body.get("due_date") and str(body["due_date"]) != str(have.get("due_date")):
        return False
    if body.get("partner_id") is not None and body.get("partner_id") != have.get("partner_id"):
        return False
    sent_lines = sorted((_line(d) for d in body.get("details") or []), key=_line_key_no_vat)
    have_lines = sorted(have["details"], key=_line_key_no_vat)
    if len(sent_lines) != len(have_lines):
        return False
    for sent, got in zip(sent_lines, have_lines, strict=True):
        for key, value in sent.items():
            if key == "vat" and value is None:
                continue
            if value != got.get(key):
                return False
    if "payments" in body:
        want_pay = sorted((_payment(p) for p in body["payments"]), key=_payment_key)
        if want_pay != have["payments"]:
            return False
    return True


def _line_key_no_vat(line: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(str(line.get(k)) for k in (*_LINE_KEYS, "tag_ids", "description") if k != "vat")


def deal_total(body: Mapping[str, Any]) -> int:
    return sum(int(d.get("amount") or 0) for d in body.get("details") or [])


def find_by_ref(deals: Iterable[Mapping[str, Any]], ref: str) -> list[Mapping[str, Any]]:
    return [d for d in deals if d.get("ref_number") == ref]


def transfer_matches(body: Mapping[str, Any], obj: Mapping[str, Any], ref: str) -> bool:
    """Section 6: same amount, both walletables, and a description ending in the ref_number."""
    want = transfer_view(body)
    have = transfer_view(obj)
    if (want["from_walletable_type"], want["from_walletable_id"]) != (
        have["from_walletable_type"],
        have["from_walletable_id"],
    ):
        return False
    if len(have["to"]) != 1 or len(want["to"]) != 1:
        return False
    w, h = want["to"][0], have["to"][0]
    return (w["type"], w["id"], w["amount"]) == (h["type"], h["id"], h["amount"]) and str(
        h["description"]
    ).endswith(ref)


def named_view(view: Mapping[str, Any] | None, masters: Masters | None) -> dict[str, Any] | None:
    """A view with ids shown as names too (for the status page's side-by-side)."""
    if view is None:
        return None
    if masters is None:
        return dict(view)
    out = dict(view)
    if view.get("kind") == "deal":
        out["partner"] = masters.name_of("partners", view.get("partner_id"))
        lines = []
        for line in view.get("details") or []:
            named = dict(line)
            named["account_item"] = masters.name_of("account_items", line.get("account_item_id"))
            named["tax"] = masters.name_of("taxes", line.get("tax_code"))
            named["item"] = masters.name_of("items", line.get("item_id"))
            named["section"] = masters.name_of("sections", line.get("section_id"))
            named["tags"] = [masters.name_of("tags", t) for t in line.get("tag_ids") or []]
            lines.append(named)
        out["details"] = lines
        pays = []
        for p in view.get("payments") or []:
            named = dict(p)
            named["walletable"] = masters.name_of("walletables", p.get("from_walletable_id"))
            pays.append(named)
        out["payments"] = pays
    else:
        out["from"] = masters.name_of("walletables", view.get("from_walletable_id"))
        out["to"] = [
            dict(r, walletable=masters.name_of("walletables", r.get("id")))
            for r in view.get("to") or []
        ]
    return out


def plan_json_of_freee(
    kind: str, obj: Mapping[str, Any], masters: Masters | None, ref: str
) -> dict[str, Any]:
    """freee's deal or transfer in the plan's posting shape (section 8, names not ids), so
    the status page can put it beside the gateway's version."""

    def name(table: str, ident: Any) -> Any:
        if ident is None:
            return None
        found = None if masters is None else masters.name_of(table, int(ident))
        return found if found is not None else f"#{ident}"

    if kind == "transfer":
        view = transfer_view(obj)
        to = view["to"][0] if view["to"] else {}
        return {
            "ref_number": ref,
            "kind": "transfer",
            "type": None,
            "issue_date": view["date"],
            "due_date": None,
            "partner": None,
            "details": [],
            "payments": [],
            "transfer": {
                "date": view["date"],
                "from": name("walletables", view["from_walletable_id"]),
                "to": name("walletables", to.get("id")),
                "amount": to.get("amount"),
                "description": to.get("description"),
            },
        }
    view = deal_view(obj)
    return {
        "ref_number": view.get("ref_number") or ref,
        "kind": "deal",
        "type": view["type"],
        "issue_date": view["issue_date"],
        "due_date": view["due_date"],
        "partner": name("partners", view["partner_id"]),
        "details": [
            {
                "account_item": name("account_items", d["account_item_id"]),
                "tax": name("taxes", d["tax_code"]),
                "amount": d["amount"],
                "vat": d["vat"],
                "item": name("items", d["item_id"]),
                "section": name("sections", d["section_id"]),
                "tags": [name("tags", t) for t in d["tag_ids"]],
                "description": d["description"],
            }
            for d in (obj.get("details") or [])
            for d in [_line(d)]
        ],
        "payments": [
            {
                "date": p["date"],
                "walletable": name("walletables", p["from_walletable_id"]),
                "amount": p["amount"],
            }
            for p in view["payments"]
        ],
        "transfer": None,
    }
