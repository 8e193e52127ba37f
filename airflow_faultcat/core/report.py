"""Plain-text rendering of a Diagnosis for terminals, TaskInstance notes and issue bodies."""

from __future__ import annotations

import textwrap

from airflow_faultcat.core.models import Category, Diagnosis

_WIDTH = 100


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_diagnosis(diagnosis: Diagnosis, *, max_findings: int = 5, max_evidence: int = 3) -> str:
    """Render ``diagnosis`` as a readable report: verdict, evidence table, next steps.

    :param diagnosis: the Diagnosis to show (its texts are already scrubbed).
    :param max_findings: how many findings to list.
    :param max_evidence: how many evidence lines to show per finding.
    :return: the report, lines of at most about 100 characters.
    """
    out: list[str] = []
    verdict = f"Root cause: {diagnosis.root_cause.value}"
    if diagnosis.root_cause is not Category.UNKNOWN:
        verdict += f"   confidence {diagnosis.confidence:.2f}"
    out.append(verdict)
    out.append(f"  {_clip(diagnosis.summary, _WIDTH - 2)}")
    out.extend(textwrap.wrap(f"Why: {diagnosis.confidence_reason}", _WIDTH, subsequent_indent="     "))
    if diagnosis.diagnostics_gap:
        out.extend(
            textwrap.wrap(f"Missing: {diagnosis.diagnostics_gap}", _WIDTH, subsequent_indent="         ")
        )
    if diagnosis.findings:
        out.append("")
        out.append(f"{'#':<3}{'category':<20}{'pattern':<18}{'conf':>5}  {'evidence':<8}")
        for rank, finding in enumerate(diagnosis.findings[:max_findings], start=1):
            out.append(
                f"{rank:<3}{finding.category.value:<20}{finding.pattern_id:<18}{finding.confidence:>5.2f}  "
                f"{_clip(finding.title, _WIDTH - 48)}"
            )
            for evidence in finding.evidence[:max_evidence]:
                where = f"line {evidence.line}" if evidence.line else evidence.source
                out.append(f"{'':<6}{where:>11} | {_clip(evidence.text, _WIDTH - 20)}")
            if finding.occurrences > len(finding.evidence[:max_evidence]):
                out.append(f"{'':<6}{'':>11} | ({finding.occurrences} matching line(s) in all)")
        if len(diagnosis.findings) > max_findings:
            out.append(f"   … {len(diagnosis.findings) - max_findings} more finding(s) (use --json)")
        top = diagnosis.findings[0]
        if diagnosis.root_cause is not Category.UNKNOWN and (top.recovery_hint or top.remediation):
            out.append("")
            if top.recovery_hint:
                out.extend(textwrap.wrap(f"Next: {top.recovery_hint}", _WIDTH, subsequent_indent="      "))
            for step in top.remediation:
                out.extend(textwrap.wrap(f"  - {step}", _WIDTH, subsequent_indent="    "))
    stats = diagnosis.stats
    out.append("")
    out.append(
        f"scanned {stats.lines_scanned} line(s), {stats.bytes_scanned} byte(s) against {stats.patterns} "
        f"pattern(s) in {stats.duration_ms:.1f} ms ({stats.engine})"
    )
    if stats.bytes_skipped:
        out.append(f"not matched: {stats.bytes_skipped} byte(s) of lines past their first MiB")
    return "\n".join(out)
