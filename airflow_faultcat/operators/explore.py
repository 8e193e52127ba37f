"""The explore step: read-only probes that test each finding against the live environment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Any

from airflow.sdk import BaseOperator

from airflow_faultcat.core.models import Diagnosis
from airflow_faultcat.core.probes import ProbeResult


class ExploreOperator(BaseOperator):
    """Run the probes that test each finding of a collected failure, here, within a time ceiling.

    The findings come from the pattern library (the same analysis ``diagnose`` makes); the probes
    from :func:`~airflow_faultcat.core.probes.catalogue.probes_for` over the hosts, ports, paths,
    sockets, connections, containers and pools the evidence names. Each probe is read-only, made
    once however many findings it tests, and given ``probe_timeout`` seconds; all of them together
    ``timeout`` seconds (those left say could_not_run). Route this task with ``queue``/``pool`` to
    the workers where the failures happen: the probes look from where they run.

    With ``[faultcat] llm_enabled``, an LLM explorer then gets the scrubbed context, the findings
    and the same probes as its only tools; its answer is used only when it validates, cites the
    evidence of probes it ran for every observation and rules out alternatives
    (:mod:`airflow_faultcat.hooks.llm`); otherwise the deterministic result stands.

    Never fails the recovery: an error of its own is returned as ``error``, and ``diagnose`` goes
    on with the deterministic diagnosis.

    :param collected: the output of the collect step (templated / XComArg).
    :param pattern_paths: extra pattern files or folders (default ``[faultcat] pattern_paths``).
    :param probe_timeout: seconds one probe may take.
    :param timeout: seconds all probes may take.
    :param faultcat_api_conn_id: the ``faultcat_api`` connection, to read a log that is not on
        this worker.
    :return: ``{"probes": [ProbeResult...], "tests": [[pattern_id or rival id, probe index]...],
        "ceiling_note": str | None, "seconds": float, "host": str, "diagnosis": the pattern
        library's Diagnosis that the probes tested, "llm": LlmOutcome (when enabled)}`` or
        ``{"error": str}``.
    """

    template_fields: Sequence[str] = ("collected", "pattern_paths")
    ui_color = "#e7f5ff"

    def __init__(
        self,
        *,
        collected: Any = None,
        pattern_paths: list[str] | None = None,
        probe_timeout: float = 2.0,
        timeout: float = 10.0,
        faultcat_api_conn_id: str = "faultcat_api_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.pattern_paths = pattern_paths
        self.probe_timeout = probe_timeout
        self.timeout = timeout
        self.faultcat_api_conn_id = faultcat_api_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.probes import probe_diagnosis
        from airflow_faultcat.operators.recovery import analyze_collected

        started = time.monotonic()
        try:
            diagnosis, lines = analyze_collected(
                self.collected, self.pattern_paths, self.faultcat_api_conn_id, with_context_lines=True
            )
            planned, results, note = probe_diagnosis(
                diagnosis, per_probe=self.probe_timeout, total=self.timeout, extra_texts=lines
            )
        except Exception as exc:  # the recovery goes on without probes
            self.log.warning("faultcat: explore failed, diagnosing without probes: %s", exc)
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}
        index = {spec: i for i, spec in enumerate(results)}
        # A finding by its pattern id, a rival by its own id (the findings of diagnose match them).
        tests = [
            [subject if isinstance(subject, str) else diagnosis.findings[subject].pattern_id, index[spec]]
            for subject, spec in planned
        ]
        spent = round(time.monotonic() - started, 3)
        for spec, result in results.items():
            self.log.info(
                "faultcat: probe %s %s -> %s (%.0f ms): %s",
                spec.kind,
                spec.target,
                result.status,
                result.duration_ms,
                result.call,
            )
        self.log.info(
            "faultcat: %d probes for %d findings in %.2f s", len(results), len(diagnosis.findings), spent
        )
        from airflow.utils.net import get_hostname

        host = get_hostname()
        out = {
            "probes": [r.model_copy(update={"host": host}).model_dump(mode="json") for r in results.values()],
            "tests": tests,
            "ceiling_note": note,
            "seconds": spent,
            "host": host,
            # The pattern library's diagnosis the probes tested: diagnose takes it rather than
            # reading the log and running the library a second time.
            "diagnosis": diagnosis.model_dump(mode="json"),
        }
        failure_host = (self.collected.get("context") or {}).get("hostname")
        llm = self._llm(apply_explored(diagnosis, out, failure_host))
        if llm is not None:
            out["llm"] = llm
        return out

    def _llm(self, diagnosis: Diagnosis) -> dict[str, Any] | None:
        """The optional LLM explorer's outcome (``[faultcat] llm_enabled``), never raising."""
        from airflow_faultcat.hooks.llm import explorer_from_conf
        from airflow_faultcat.known_secrets import known_values_for

        try:
            explorer = explorer_from_conf(known_values_for(self.collected))
        except Exception as exc:
            self.log.warning("faultcat: LLM explorer not set up: %s", exc)
            return {"accepted": False, "problems": [f"not set up: {exc}"[:300]]}
        if explorer is None:
            return None
        try:
            outcome = explorer.explore(diagnosis)
        finally:
            explorer.close()
        if outcome.accepted:
            self.log.info("faultcat: LLM explorer (%s) accepted after %d steps", outcome.model, outcome.steps)
        else:
            self.log.info(
                "faultcat: LLM explorer answer rejected, deterministic diagnosis kept: %s", outcome.problems
            )
        return outcome.model_dump(mode="json")


#: Log lines before and after each evidence line that are searched for probe targets: a task
#: usually says what it connects to just before the error, and Airflow 3 forwards what the task
#: printed to stdout with a lag, so such a line often lands after the error's own record.
CONTEXT_BEFORE, CONTEXT_AFTER = 8, 8


def context_lines(stream: IO[bytes], diagnosis: Diagnosis, limit: int = 200) -> list[str]:
    """The log lines around the findings' evidence lines (the line numbers the analyzer cites).

    :param stream: the log, from its start.
    :param diagnosis: the Diagnosis whose evidence lines are wanted.
    :param limit: lines returned at most (each cut to 4 KiB).
    """
    wanted: set[int] = set()
    for finding in diagnosis.findings:
        for evidence in finding.evidence:
            if evidence.line:
                wanted.update(
                    range(max(1, evidence.line - CONTEXT_BEFORE), evidence.line + CONTEXT_AFTER + 1)
                )
    if not wanted:
        return []
    out: list[str] = []
    last = max(wanted)
    for number, raw in enumerate(stream, start=1):
        if number > last or len(out) >= limit:
            break
        if number in wanted:
            out.append(raw[:4096].decode("utf-8", "replace"))
    return out


def other_host(result: ProbeResult, failure_host: str | None) -> ProbeResult:
    """``result`` as a diagnostics gap when it looked at its own host's state and the failed try
    ran on another host (or on one not known): a healthy disk here says nothing about that one.

    :param result: one probe result, with the host it ran on.
    :param failure_host: the host the failed try ran on (the FailureContext's ``hostname``).
    """
    from airflow_faultcat.core.probes import HOST_LOCAL_KINDS

    if result.spec.kind not in HOST_LOCAL_KINDS or result.status == "could_not_run":
        return result
    if failure_host and result.host and _same_host(result.host, failure_host):
        return result
    where = f"the failed try ran on {failure_host}" if failure_host else "the failed try's host is not known"
    return result.model_copy(
        update={
            "status": "could_not_run",
            "output": f"ran on {result.host or 'another host'}, {where}: it says nothing about that host "
            f"(it saw {result.status}: {result.output})"[:1000],
        }
    )


def _same_host(a: str, b: str) -> bool:
    """Host names as Airflow records them may be short or fully qualified."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.split(".", 1)[0] == b.split(".", 1)[0]


def apply_explored(
    diagnosis: Diagnosis, explored: dict[str, Any], failure_host: str | None = None
) -> Diagnosis:
    """The diagnosis moved by the explore step's probes (matched to findings by pattern id).

    A finding the explore step did not see (another pattern library) gets no probe; an explore
    step that failed adds a diagnostics gap. A probe of the explore host's own state (disk,
    memory, paths, processes, sockets) counts only when the failed try ran on that host; otherwise
    it is a gap (:func:`other_host`).

    :param diagnosis: the pattern library's Diagnosis.
    :param explored: the explore step's output.
    :param failure_host: the host the failed try ran on.
    """
    from airflow_faultcat.core.probes.catalogue import RIVALS, explore

    if explored.get("error"):
        gap = f"probes did not run: {explored['error']}"
        merged = f"{diagnosis.diagnostics_gap}; {gap}" if diagnosis.diagnostics_gap else gap
        return diagnosis.model_copy(update={"diagnostics_gap": merged[:2000]})
    llm = explored.get("llm") or {}
    if llm.get("accepted") and llm.get("diagnosis"):
        # The LLM's answer passed the judge: it started from these probes and cites its own.
        return Diagnosis.model_validate(llm["diagnosis"])
    ran_on = explored.get("host")
    probes = [
        other_host(result if result.host else result.model_copy(update={"host": ran_on}), failure_host)
        for result in (ProbeResult.model_validate(p) for p in explored.get("probes") or [])
    ]
    at: dict[str, int | str] = {r.rival_id: r.rival_id for r in RIVALS}
    at.update({f.pattern_id: i for i, f in enumerate(diagnosis.findings)})
    pairs = [
        (at[pid], probes[p]) for pid, p in explored.get("tests") or [] if pid in at and 0 <= p < len(probes)
    ]
    return explore(diagnosis, pairs, ceiling_note=explored.get("ceiling_note"))


__all__ = ["ExploreOperator", "apply_explored"]
