"""The explore step: read-only probes that test each finding against the live environment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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

    Never fails the recovery: an error of its own is returned as ``error``, and ``diagnose`` goes
    on with the deterministic diagnosis.

    :param collected: the output of the collect step (templated / XComArg).
    :param pattern_paths: extra pattern files or folders (default ``[faultcat] pattern_paths``).
    :param probe_timeout: seconds one probe may take.
    :param timeout: seconds all probes may take.
    :return: ``{"probes": [ProbeResult...], "tests": [[pattern_id, probe index]...],
        "ceiling_note": str | None, "seconds": float, "host": str}`` or ``{"error": str}``.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.pattern_paths = pattern_paths
        self.probe_timeout = probe_timeout
        self.timeout = timeout

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.probes import probe_diagnosis
        from airflow_faultcat.operators.recovery import analyze_collected

        started = time.monotonic()
        try:
            diagnosis = analyze_collected(self.collected, self.pattern_paths)
            planned, results, note = probe_diagnosis(
                diagnosis, per_probe=self.probe_timeout, total=self.timeout
            )
        except Exception as exc:  # the recovery goes on without probes
            self.log.warning("faultcat: explore failed, diagnosing without probes: %s", exc)
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}
        index = {spec: i for i, spec in enumerate(results)}
        tests = [[diagnosis.findings[f].pattern_id, index[spec]] for f, spec in planned]
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

        out = {
            "probes": [r.model_dump(mode="json") for r in results.values()],
            "tests": tests,
            "ceiling_note": note,
            "seconds": spent,
            "host": get_hostname(),
        }
        return out


def apply_explored(diagnosis: Diagnosis, explored: dict[str, Any]) -> Diagnosis:
    """The diagnosis moved by the explore step's probes (matched to findings by pattern id).

    A finding the explore step did not see (another pattern library) gets no probe; an explore
    step that failed adds a diagnostics gap.
    """
    from airflow_faultcat.core.probes.catalogue import explore

    if explored.get("error"):
        gap = f"probes did not run: {explored['error']}"
        merged = f"{diagnosis.diagnostics_gap}; {gap}" if diagnosis.diagnostics_gap else gap
        return diagnosis.model_copy(update={"diagnostics_gap": merged[:2000]})
    probes = [ProbeResult.model_validate(p) for p in explored.get("probes") or []]
    at = {f.pattern_id: i for i, f in enumerate(diagnosis.findings)}
    pairs = [
        (at[pid], probes[p]) for pid, p in explored.get("tests") or [] if pid in at and 0 <= p < len(probes)
    ]
    return explore(diagnosis, pairs, ceiling_note=explored.get("ceiling_note"))


__all__ = ["ExploreOperator", "apply_explored"]
