"""The books page: deals by date with lines, payments and status, and transfers (demo).

Pure: takes stored rows and a company's masters, returns HTML in Japanese.
"""

from __future__ import annotations

import html
from itertools import groupby
from typing import Any

from gatewayd.sim.freee.accounting import Book, deal_status

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.3em 0 1em}
th,td{border:1px solid #bbb;padding:.2em .5em;font-size:.9em}
th{background:#f0f0f0}td.num{text-align:right}
.settled{color:#176b2c;font-weight:bold}.unsettled{color:#b3261e;font-weight:bold}
h2{border-bottom:2px solid #444;margin-top:1.5em}.deal{margin-left:1em}"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _yen(amount: int) -> str:
    return f"{amount:,}円"


def render(book: Book, deals: list[dict[str, Any]], transfers: list[dict[str, Any]],
           companies: list[tuple[int, str]], refresh: int | None = None) -> str:
    """The whole page for ``book``'s company."""
    accounts = {a["id"]: a["name"] for a in book.account_items.values()}
    taxes = {t["code"]: t["name_ja"] for t in book.taxes.values()}
    wallets = {w["id"]: w["name"] for w in book.walletables.values()}
    names = {
        "item": {i: m["name"] for i, m in book.items.items()},
        "section": {i: m["name"] for i, m in book.sections.items()},
        "tag": {i: m["name"] for i, m in book.tags.items()},
        "partner": {i: m["name"] for i, m in book.partners.items()},
    }
    parts = [
        '<!doctype html><html lang="ja"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{refresh}">' if refresh else "",
        f"<title>帳簿 — {_e(book.profile.get('display_name'))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>取引一覧（{_e(book.profile.get('display_name'))}）</h1>",
        "<p>freee会計 エミュレータの帳簿です。事業所: ",
        " / ".join(
            f'<a href="?company_id={cid}">{_e(name)}</a>' for cid, name in companies
        ),
        "</p>",
        f"<p>取引 {len(deals)} 件・振替 {len(transfers)} 件</p>",
    ]
    if not deals:
        parts.append("<p>取引はまだありません。</p>")
    for day, group in groupby(sorted(deals, key=lambda d: (d["issue_date"], d["id"])),
                              key=lambda d: d["issue_date"]):
        parts.append(f'<h2 class="day" id="day-{_e(day)}">{_e(day)}</h2>')
        for deal in group:
            parts.append(_deal(deal, accounts, taxes, wallets, names))
    parts.append("<h2>口座振替</h2>")
    if not transfers:
        parts.append("<p>振替はまだありません。</p>")
    else:
        parts.append("<table><tr><th>日付</th><th>ID</th><th>振替元</th><th>振替先</th>"
                     "<th>金額</th><th>備考</th></tr>")
        for transfer in sorted(transfers, key=lambda t: (t["date"], t["id"])):
            for dest in transfer["destinations"]:
                parts.append(
                    f"<tr><td>{_e(transfer['date'])}</td><td>{transfer['id']}</td>"
                    f"<td>{_e(wallets.get(transfer['from_walletable_id']))}</td>"
                    f"<td>{_e(wallets.get(dest['id']))}</td>"
                    f"<td class=num>{_yen(dest['amount'])}</td>"
                    f"<td>{_e(dest.get('description'))}</td></tr>"
                )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _deal(deal: dict[str, Any], accounts: dict[int, str], taxes: dict[int, str],
          wallets: dict[int, str], names: dict[str, dict[int, str]]) -> str:
    status, due = deal_status(deal)
    label = "決済済み" if status == "settled" else f"未決済（残 {_yen(due)}）"
    kind = "収入" if deal["type"] == "income" else "支出"
    partner = names["partner"].get(deal["partner_id"] or 0)
    rows = [
        f'<div class="deal" id="deal-{deal["id"]}"><h3>取引 {deal["id"]}　{kind}　'
        f"{_yen(deal['amount'])}　<span class=\"{status}\">{label}</span></h3>",
        f"<p>管理番号: {_e(deal['ref_number'] or '（なし）')}",
        f"　取引先: {_e(partner)}" if partner else "",
        f"　期日: {_e(deal['due_date'])}" if deal["due_date"] else "",
        "</p><table><tr><th>勘定科目</th><th>税区分</th><th>金額</th><th>消費税</th>"
        "<th>品目</th><th>部門</th><th>メモタグ</th><th>備考</th></tr>",
    ]
    for line in deal["details"]:
        tags = "、".join(names["tag"].get(t, str(t)) for t in line["tag_ids"])
        rows.append(
            f"<tr><td>{_e(accounts.get(line['account_item_id']))}</td>"
            f"<td>{_e(taxes.get(line['tax_code'], line['tax_code']))}</td>"
            f"<td class=num>{_yen(line['amount'])}</td><td class=num>{_yen(line['vat'])}</td>"
            f"<td>{_e(names['item'].get(line['item_id'] or 0))}</td>"
            f"<td>{_e(names['section'].get(line['section_id'] or 0))}</td>"
            f"<td>{_e(tags)}</td><td>{_e(line['description'])}"
            f"{'（控除・マイナス行）' if line['amount'] < 0 else ''}</td></tr>"
        )
    rows.append("</table>")
    if deal["payments"]:
        rows.append("<table><tr><th>支払日</th><th>口座</th><th>金額</th></tr>")
        for payment in deal["payments"]:
            wallet = (wallets.get(payment["from_walletable_id"])
                      if payment["from_walletable_type"] != "private_account_item"
                      else accounts.get(payment["from_walletable_id"]))
            rows.append(
                f"<tr><td>{_e(payment['date'])}</td><td>{_e(wallet)}</td>"
                f"<td class=num>{_yen(payment['amount'])}</td></tr>"
            )
        rows.append("</table>")
    rows.append("</div>")
    return "".join(rows)
