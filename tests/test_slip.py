"""The close slip's content, encoding (CP932, Kanji mode) and the ESC/POS text decoder."""

from __future__ import annotations

import pytest
from printer_fixtures import sample_content

from gatewayd.drivers.slip import (
    KANJI_ON,
    KANJI_SHIFT_JIS,
    SlipContent,
    SlipStatus,
    encode_text,
    qr_code,
    render_slip,
    reprint_banner,
    two_columns,
    wrap,
)
from gatewayd.escpos_text import decode, display_width, tokenize
from gatewayd.staff_dates import staff_date, staff_datetime


def _line_with(text: str, needle: str) -> str:
    matches = [line for line in text.splitlines() if needle in line]
    assert matches, f"{needle!r} not in:\n{text}"
    return matches[0]


@pytest.mark.dates
def test_sent_slip_holds_store_date_totals_result_and_qr() -> None:
    content = sample_content(SlipStatus.SENT)
    printed = decode(render_slip(content), columns=42)
    text = printed.text
    assert "締め結果" in text and "【送信済】" in text
    assert "店舗　渋谷店 (0001)" in text
    assert "端末　01" in text
    assert f"営業日　{staff_date(content.business_date)}" in text
    assert _line_with(text, "現金").endswith("¥200,000")
    assert _line_with(text, "クレジット").endswith("¥150,000")
    assert _line_with(text, "電子マネー").endswith("¥59,217")
    assert _line_with(text, "QRコード決済").endswith("¥0")
    assert _line_with(text, "合計").endswith("¥409,217")
    assert _line_with(text, "10% 標準税率").endswith("¥380,000")
    assert _line_with(text, "8% 軽減税率").endswith("¥29,217")
    assert _line_with(text, "非課税").endswith("¥0")
    assert _line_with(text, "うち消費税").endswith("¥37,200")
    assert "freee会計: 送信済" in text
    assert "理由:" not in text
    assert printed.qr_codes == ["http://192.168.10.5:8080/status"]
    assert "[QR: http://192.168.10.5:8080/status]" in text
    assert content.made_at is not None
    assert f"作成　{staff_datetime(content.made_at)}" in text
    assert printed.cuts == 1 and text.rstrip().endswith("[CUT]")
    assert printed.unknown == [] and printed.kicks == []


def test_held_slip_says_why_and_what_to_do() -> None:
    content = sample_content(SlipStatus.HELD, close_no=2, tax=None)
    text = decode(render_slip(content, columns=32), columns=32).text
    assert "【保留】" in text and "freee会計: 保留" in text
    assert "再締め　2回目" in text
    assert "理由:" in text and "対応:" in text
    joined = " ".join(line.strip() for line in text.splitlines())
    assert "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)" in joined
    assert "レジの記録を確認し、ステータス画面から再送してください。" in joined.replace(" ", "")
    assert _line_with(text, "うち消費税").endswith("記録なし")
    for line in text.splitlines():
        if not line.startswith("[QR"):
            assert display_width(line) <= 32, line


def test_every_line_fits_the_paper_width() -> None:
    for columns in (32, 42, 48):
        data = render_slip(sample_content(SlipStatus.HELD), columns=columns)
        for line in decode(data).lines:
            if not line.startswith("["):
                assert display_width(line) <= columns, (columns, line)


def test_kanji_mode_is_switched_on_before_the_first_kanji() -> None:
    data = render_slip(sample_content())
    first_kanji = data.index("締".encode("cp932"))
    assert KANJI_SHIFT_JIS in data[:first_kanji] and KANJI_ON in data[:first_kanji]
    assert data.endswith(b"\x1c.\x1dVB\x03")  # Kanji mode cancelled, then the cut
    # Without FS & a Japanese printer prints the bytes singly: mojibake, not 締め結果.
    without_kanji = data.replace(KANJI_ON, b"")
    assert "締め結果" not in decode(without_kanji).text


def test_yen_sign_is_5c_under_the_japan_character_set() -> None:
    assert encode_text("¥1,000") == b"\\1,000"
    assert "¥1,000" in decode(b"\x1b@\x1bR\x08\x1cC\x01\x1c&" + encode_text("¥1,000") + b"\n").text
    # without ESC R 8 the same byte is a backslash
    assert "\\1,000" in decode(b"\x1b@" + encode_text("¥1,000") + b"\n").text


def test_unencodable_text_does_not_break_the_slip() -> None:
    content = sample_content(SlipStatus.HELD, reason="emoji 🍣 here")
    text = decode(render_slip(content)).text
    assert "emoji ? here" in text


def test_wrap_keeps_words_and_punctuation() -> None:
    lines = wrap("前回の印刷が途中で止まった可能性があります。同じ内容", 40)
    assert all(len(encode_text(line)) <= 40 for line in lines)
    assert not any(line.startswith("。") for line in lines)
    assert wrap("alpha beta gamma", 11) == ["alpha beta", "gamma"]


def test_two_columns_right_aligns_by_printed_width() -> None:
    line = two_columns("  現金", "¥1,000", 20)
    assert len(encode_text(line)) == 20 and line.endswith("¥1,000")


def test_reprint_banner_marks_a_possible_duplicate() -> None:
    text = decode(reprint_banner() + render_slip(sample_content())).text
    assert text.index("*** 再印刷 ***") < text.index("締め結果")
    assert "1枚を破棄してください" in text.replace("\n", "")


def test_qr_code_bytes_are_native_gs_k() -> None:
    data = qr_code("http://x/", size=4)
    tokens, used = tokenize(data)
    assert used == len(data)
    assert [t.code for t in tokens] == [b"\x1d("] * 5
    assert decode(data).qr_codes == ["http://x/"]


@pytest.mark.parametrize("cut", [1, 5, 17, 100])
def test_tokenizer_waits_for_a_command_cut_in_two(cut: int) -> None:
    data = render_slip(sample_content())
    _, used = tokenize(data[:cut])
    _, used2 = tokenize(data[used:])
    assert used + used2 == len(data)


def test_decoder_notes_kicks_images_and_jis_kanji() -> None:
    data = (b"\x1b@\x1bp\x00\x32\x32" + b"\x1dv0\x00\x01\x00\x01\x00\xff"
            + b"\x1cC\x00\x1c&" + "締め".encode("iso2022_jp")[3:-3] + b"\x1c.\n")
    out = decode(data)
    assert [(k.pin, k.on_ms) for k in out.kicks] == [(2, 100)]
    assert out.images == 1
    assert "締め" in out.text


def test_content_from_a_day_plans_totals() -> None:
    from datetime import date

    from gatewayd.protocol.records import Method, TaxClass
    from gatewayd.sync.plan import DayTotals

    totals = DayTotals(gross=1100, tax=100, by_class={TaxClass.STANDARD: 1100},
                       by_method={Method.CASH: 1100})
    content = SlipContent.from_totals(totals, store_name="本店", store_code="0002",
                                      terminal="03", business_date=date(2025, 2, 1),
                                      status=SlipStatus.SENT, close_no=1)
    assert content.key == "0002/03/2025-02-01/1/sent"
    assert content.title == "2025-02-01 送信済"
    text = decode(render_slip(content)).text
    assert _line_with(text, "現金").endswith("¥1,100")
    assert _line_with(text, "うち消費税").endswith("¥100")
