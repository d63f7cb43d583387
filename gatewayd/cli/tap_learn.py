"""``gatewayd tap learn CAPTURE...``: read an unknown register's Z report and draft a template.

Without ``--template``: shows the first Z report found in the first capture with line numbers,
drafts a template from the labels it recognises (``--write FILE`` saves it), then checks the
draft against every capture. With ``--template FILE``: checks that template against every
capture. Each Z report prints one line: date, counter, verdict, totals, and the reason when
held. Exit 0 when every Z report is accepted, 1 otherwise (or when none was found).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gatewayd.errors import ConfigError
from gatewayd.tap.capture import read_capture, z_jobs
from gatewayd.tap.checks import Verdict
from gatewayd.tap.escpos import Line, job_lines, split_jobs
from gatewayd.tap.learn import draft_template, guess_tax_included
from gatewayd.tap.report import folded
from gatewayd.tap.template import Template, load_template, parse_template

_NOT_Z = ("点検", "トレーニング", "練習", "再発行", "再印字", "リプリント")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("captures", metavar="CAPTURE", nargs="+", type=Path,
                        help="raw print streams (bytes as the register sent them)")
    parser.add_argument("--template", metavar="FILE", type=Path,
                        help="check this template instead of drafting one")
    parser.add_argument("--write", metavar="FILE", type=Path, help="save the drafted template")
    parser.add_argument("--name", default="learned", help="the drafted template's name")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the capture: {exc.strerror}", key=str(path)) from None


def find_report(data: bytes) -> tuple[int, list[Line], bool] | None:
    """(job number, folded lines, always_kanji) of the first job that looks like a Z report."""
    for number, job in enumerate(split_jobs([(0.0, data)]), start=1):
        always_kanji = b"\x1c&" not in job.data and any(b >= 0x80 for b in job.data)
        lines = folded(job_lines(job.data, always_kanji=always_kanji))
        text = "\n".join(ln.text for ln in lines)
        heading = any("精算" in ln.text or ln.text.strip().startswith(("Z", "【Z】"))
                      for ln in lines[:5])
        if heading and not any(word in text for word in _NOT_Z):
            return number, lines, always_kanji
    return None


def show_lines(lines: list[Line]) -> str:
    return "\n".join(
        f"{ln.number:4d}  {ln.text}{'   [double]' if ln.double else ''}" for ln in lines
    )


def check_lines(template: Template, path: Path, data: bytes) -> tuple[list[str], bool]:
    """One line per Z report of a capture; and whether all were accepted."""
    out = []
    ok = True
    zs = z_jobs(read_capture(data, template))
    if not zs:
        return [f"{path}: no Z report recognised by template {template.name}"], False
    for c in zs:
        j = c.judgement
        r = j.report
        assert r is not None
        when = r.business_date.isoformat() if r.business_date else "????-??-??"
        rates = " ".join(
            f"{cls.value}:{r.bases[cls]}/{r.taxes[cls]}" for cls in r.bases if r.bases[cls]
        )
        methods = " ".join(f"{m.value}:{v}" for m, v in r.methods.items() if v)
        line = (f"{path} job {c.index}: {when} Z {r.z_counter} {j.verdict.value} "
                f"gross {r.gross} rates {rates} methods {methods}")
        if j.reason:
            line += f"\n    {j.reason}"
        ok = ok and j.verdict is Verdict.ACCEPTED
        out.append(line)
    return out, ok


def run(args: argparse.Namespace) -> int:
    captures = [(p, _read(p)) for p in args.captures]
    if args.template is not None:
        template = load_template(args.template)
    else:
        path, data = captures[0]
        found = find_report(data)
        if found is None:
            print(f"{path}: no job looks like a Z report (精算 heading)", file=sys.stderr)
            return 1
        number, lines, always_kanji = found
        print(f"== {path}: job {number}, {len(lines)} lines")
        print(show_lines(lines))
        text = draft_template(args.name, lines, always_kanji=always_kanji,
                              tax_included=guess_tax_included(lines))
        print("== drafted template")
        print(text)
        if args.write is not None:
            args.write.write_text(text, encoding="utf-8")
            print(f"== written to {args.write}")
        template = parse_template(text, "draft")
    print(f"== checks with template {template.name}")
    all_ok = True
    for path, data in captures:
        lines_out, ok = check_lines(template, path, data)
        print("\n".join(lines_out))
        all_ok = all_ok and ok
    return 0 if all_ok else 1
