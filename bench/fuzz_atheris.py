"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads untrusted bytes.

    .venv/bin/pip install atheris          # x86_64 wheels; optional extra "fuzz"
    .venv/bin/python bench/fuzz_atheris.py TARGET [-max_total_time=60] [libFuzzer options]

Targets: ``frames`` (the REGLINK/1 frame decoder in both directions, then the S/J/K/C DATA
parsers on every decoded frame), ``records`` (record lines and the day checks of the lines
of one input, numbered as the store numbers them), ``config`` (bytes as the configuration
file: TOML, then every part's table). Only the typed errors of each are allowed
(``FrameDataError``, ``RecordFormatError``, ``ConfigError``); anything else — or a hang,
libFuzzer's ``-timeout`` — is a crash that libFuzzer reports with the input that caused it.

The hypothesis tests (tests/test_fuzz_*.py) cover the same code in the normal suite; this is
the deeper, slower search that coverage feedback gives. atheris has no wheels for the
Raspberry Pi's arm64, so it is not a dependency of the box: run it on a workstation.
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:  # pragma: no cover - optional tool
    print("atheris is not installed: .venv/bin/pip install atheris (x86_64)", file=sys.stderr)
    raise SystemExit(2) from None

with atheris.instrument_imports():
    # the parts' table parsers, which config imports lazily: instrument them too
    import gatewayd.drivers.printer_settings
    import gatewayd.settings_reader
    import gatewayd.sync.freee_settings
    import gatewayd.sync.mapping_settings
    import gatewayd.web.settings  # noqa: F401
    from gatewayd.config import parse_settings
    from gatewayd.errors import ConfigError, FrameDataError, RecordFormatError
    from gatewayd.protocol.days import analyze_journal
    from gatewayd.protocol.frames import (
        Frame,
        FrameDecoder,
        FrameKind,
        parse_clock,
        parse_record_no,
        parse_status_info,
        split_journal_data,
    )
    from gatewayd.protocol.journal_parser import parse_record, read_record

SOURCE = Path("/etc/gatewayd/gatewayd.toml")


def fuzz_frames(data: bytes) -> None:
    for kind in FrameKind:
        decoder = FrameDecoder(kind)
        half = len(data) // 2
        for event in decoder.feed(data[:half]) + decoder.feed(data[half:]):
            if not isinstance(event, Frame):
                continue
            for parse in (parse_status_info, parse_record_no, parse_clock):
                with contextlib.suppress(FrameDataError):
                    parse(event.data)
            split_journal_data(1, event.data)
            if event.status is not None:
                event.register_status  # noqa: B018 - decodes the six bytes


def fuzz_records(data: bytes) -> None:
    lines = data.split(b"\n")
    for line in lines[:50]:
        read_record(line)
        with contextlib.suppress(RecordFormatError):
            parse_record(line)
    analyze_journal(list(enumerate(lines, start=1)), after_record_no=0)
    analyze_journal(lines, after_record_no=None)


def fuzz_config(data: bytes) -> None:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    with contextlib.suppress(ConfigError):
        parse_settings(document, source=SOURCE)


TARGETS = {"frames": fuzz_frames, "records": fuzz_records, "config": fuzz_config}


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start from: libFuzzer mutates these (a corpus beats random bytes)."""
    from datetime import date, datetime

    from gatewayd.protocol.frames import (
        RegisterStatus,
        StatusInfo,
        encode_request,
        encode_response,
    )
    from gatewayd.sim.journal_gen import generate_journal

    journal = generate_journal(1, 2, date(2025, 1, 6), receipts_per_day=5)
    if target == "frames":
        info = StatusInfo("SIM", "1", "0001", "01", date(2025, 1, 6), 9, 3,
                          datetime(2025, 1, 6, 9, 0, 0))
        ok = RegisterStatus(day_open=True).encode()
        records = "".join(line + "\n" for line in journal[:20]).encode("cp932")
        return [encode_request(0x20, "S"), encode_response(0x20, "S", info.encode(), ok),
                encode_request(0x21, "J", b"1"), encode_response(0x21, "J", records, ok),
                encode_response(0x22, "K", b"20", ok), b"\x15\x16"]
    if target == "records":
        return ["\n".join(journal).encode("cp932")]
    return [(Path(__file__).resolve().parents[1] / "etc/gatewayd.toml").read_bytes()]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]",
              file=sys.stderr)
        raise SystemExit(2)
    target = TARGETS[sys.argv[1]]
    options = sys.argv[2:]
    if not [a for a in options if not a.startswith("-")]:  # no corpus given: seed one
        import tempfile

        corpus = Path(tempfile.mkdtemp(prefix=f"gatewayd-fuzz-{sys.argv[1]}-"))
        for i, seed in enumerate(seeds(sys.argv[1])):
            (corpus / f"seed{i}").write_bytes(seed)
        options.append(str(corpus))
    atheris.Setup([sys.argv[0], *options], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
