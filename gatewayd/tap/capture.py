"""A whole captured print stream through a template: each job's verdict and each day's plan.

Pure. Used by ``gatewayd tap learn`` and ``gatewayd plan --template``; the daemon does the same
job by job as bytes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.plan import DayPlan
from gatewayd.tap.checks import Judgement, TapHistory, Verdict, judge
from gatewayd.tap.escpos import Job, split_jobs
from gatewayd.tap.posting import plan_report
from gatewayd.tap.report import JobKind, JobReading, read_job
from gatewayd.tap.template import Template


@dataclass(frozen=True, slots=True)
class CapturedJob:
    index: int  # 1-based within the capture
    job: Job
    reading: JobReading
    judgement: Judgement


def read_capture(
    data: bytes, template: Template, history: TapHistory | None = None, idle_gap: float = 2.0
) -> list[CapturedJob]:
    """Every job of a capture (a plain file has no timing: jobs end at cuts)."""
    h = history or TapHistory()
    out = []
    for i, job in enumerate(split_jobs([(0.0, data)], idle_gap=idle_gap), start=1):
        reading = read_job(template, job.data)
        judgement = judge(reading, template, h)
        h = judgement.history
        out.append(CapturedJob(i, job, reading, judgement))
    return out


def plan_of(
    captured: CapturedJob,
    template: Template,
    store_code: str,
    terminal_no: str,
    settings: MappingSettings,
) -> DayPlan | None:
    """The plan of a Z report job (ready or held); None for ignored jobs or without a date."""
    j = captured.judgement
    report = j.report
    if j.verdict is Verdict.IGNORED or report is None or report.business_date is None:
        return None
    return plan_report(
        report, template, store_code, terminal_no, settings, j.close_no,
        held_reason=j.reason if j.verdict is Verdict.HELD else None,
    )


def plan_capture(
    data: bytes,
    template: Template,
    store_code: str,
    terminal_no: str,
    settings: MappingSettings,
) -> list[DayPlan]:
    """One plan per Z report read from the capture, in print order."""
    plans = []
    for captured in read_capture(data, template):
        plan = plan_of(captured, template, store_code, terminal_no, settings)
        if plan is not None:
            plans.append(plan)
    return plans


def z_jobs(captured: list[CapturedJob]) -> list[CapturedJob]:
    return [c for c in captured if c.reading.kind is JobKind.Z_REPORT]
