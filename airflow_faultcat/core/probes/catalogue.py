"""Which probes test which finding, and how their outcomes move it.

A finding is a claim about the environment ("the database refused connections", "the disk is
full", "libvirtd is not running"). :func:`probes_for` picks the probes that test that claim
against what the evidence names (hosts, ports, paths, sockets; the finding's
``services_affected``); :func:`explore` reads their results:

- a probe that sees the claimed condition still there **confirms** the finding (confidence up);
- a probe that sees it gone **contradicts** it (confidence down; a contradicted finding below a
  confirmed or uncontradicted one moves to the winner's ``alternatives_ruled_out``, naming the
  probe);
- a probe that could not run is a **diagnostics gap**, written down, never silent.

Whether a condition that is gone now was real then (a transient outage) is for the history and
flake detection to say; the probe says what is true now, with the call that saw it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from airflow_faultcat.core.models import Category, Diagnosis, Evidence, Finding, RuledOut
from airflow_faultcat.core.probes import ProbeKind, ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.targets import Targets

Verdict = Literal["confirms", "contradicts", "gap"]

#: Words of a finding (title, pattern id, services) that make a probe kind relevant to it.
_DNS_WORDS = ("resolv", "dns", "name or service", "getaddrinfo", "nodename", "unknown host")
_SPACE_WORDS = ("space", "disk", "inode", "quota", "filesystem full", "enospc")
_TLS_WORDS = ("certificate", "ssl", "tls", "handshake")
_CONTAINER_WORDS = ("container", "docker", "podman", "oci runtime")
_AIRFLOW_WORDS = (
    "scheduler",
    "triggerer",
    "dag processor",
    "dag-processor",
    "heartbeat",
    "zombie",
    "execution api",
)
_POOL_WORDS = ("pool", "slot")
#: Local daemons a process or socket probe can look for (a remote database is tested by TCP to
#: the endpoint the error names, not by whatever runs on this worker).
_SERVICES: dict[str, tuple[str, str]] = {
    "libvirt": ("libvirtd", "/var/run/libvirt/libvirt-sock"),
    "docker": ("dockerd", "/var/run/docker.sock"),
    "podman": ("podman", "/run/podman/podman.sock"),
}
#: At most this many probes per finding.
MAX_PER_FINDING = 4
#: Confidence moves: a confirmation closes this share of the gap to 1; a contradiction keeps
#: this share.
CONFIRM_GAIN = 0.5
CONTRADICT_KEEP = 0.4


def _words(finding: Finding) -> str:
    return " ".join([finding.title, finding.pattern_id, *finding.services_affected]).lower()


def probes_for(finding: Finding, targets: Targets) -> list[ProbeSpec]:
    """The probes that test ``finding`` against what the evidence named."""
    words = _words(finding)
    specs: list[ProbeSpec] = []

    def add(kind: ProbeKind, target: str) -> None:
        spec = ProbeSpec(kind=kind, target=target)
        if spec not in specs and len(specs) < MAX_PER_FINDING:
            specs.append(spec)

    if any(w in words for w in _DNS_WORDS):
        for host in targets.hosts:
            add("dns", host)
    if any(w in words for w in _TLS_WORDS):
        for host, port in targets.tls or targets.endpoints:
            add("tls", f"{host}:{port}")
    if finding.category in (Category.NETWORK, Category.SERVICE_DEPENDENCY, Category.TIMEOUT) and not any(
        w in words for w in _DNS_WORDS
    ):
        for host, port in targets.endpoints:
            add("tcp", f"{host}:{port}")
    if finding.category in (Category.STORAGE, Category.RESOURCE_EXHAUSTION) and any(
        w in words for w in _SPACE_WORDS
    ):
        for path in targets.paths:
            add("disk", path)
    if finding.category in (
        Category.SERVICE_DEPENDENCY,
        Category.CREDENTIAL,
        Category.NETWORK,
        Category.TIMEOUT,
    ):
        for conn_id in targets.connections:
            add("connection", conn_id)
    if any(w in words for w in _CONTAINER_WORDS):
        for name in targets.containers:
            add("container", name)
    if any(w in words for w in _AIRFLOW_WORDS):
        add("airflow_health", "faultcat_api_default")
    if finding.category == Category.RESOURCE_EXHAUSTION and any(w in words for w in _POOL_WORDS):
        for pool in targets.pools:
            add("pool", pool)
    for service, (process, sock) in _SERVICES.items():
        if service in words and finding.category in (
            Category.VIRTUALIZATION,
            Category.SERVICE_DEPENDENCY,
            Category.NETWORK,
        ):
            for path in targets.sockets:
                add("unix_socket", path)
            if not targets.sockets:
                add("unix_socket", sock)
            add("process", process)
    return specs


def verdict(result: ProbeResult) -> Verdict:
    """What a probe's outcome says of the finding it tests: the claimed condition still there
    (``failed``: confirms), gone (``ok``: contradicts), or not looked at (``gap``)."""
    if result.status == "could_not_run":
        return "gap"
    return "confirms" if result.status == "failed" else "contradicts"


def probe_evidence(result: ProbeResult) -> Evidence:
    """A probe's observation as Evidence (source ``probe``): the call, the outcome, the output."""
    text = f"{result.call} -> {result.status} ({result.duration_ms:.0f} ms): {result.output}"
    return Evidence(source="probe", text=" ".join(text.split())[:500])


def explore(
    diagnosis: Diagnosis, results: Sequence[tuple[int, ProbeResult]], *, ceiling_note: str | None = None
) -> Diagnosis:
    """The diagnosis after the probes: confidences moved, contradicted findings ruled out, gaps said.

    :param diagnosis: the deterministic diagnosis.
    :param results: (index of the finding in ``diagnosis.findings``, result) pairs.
    :param ceiling_note: set when the time ceiling stopped probing early.
    :return: a new Diagnosis; the input is not changed.
    """
    findings = [f.model_copy(deep=True) for f in diagnosis.findings]
    state: dict[int, list[Verdict]] = {}
    gaps: list[str] = []
    ruled_by: dict[int, ProbeResult] = {}
    for index, result in results:
        if not 0 <= index < len(findings):
            continue
        v = verdict(result)
        state.setdefault(index, []).append(v)
        findings[index].evidence.append(probe_evidence(result))
        if v == "gap":
            gaps.append(f"{result.spec.kind} {result.spec.target}: {result.output}")
        elif v == "contradicts":
            ruled_by.setdefault(index, result)
    for index, verdicts in state.items():
        finding = findings[index]
        confirmed, contradicted = verdicts.count("confirms"), verdicts.count("contradicts")
        if confirmed and not contradicted:
            finding.confidence = round(finding.confidence + (1 - finding.confidence) * CONFIRM_GAIN, 3)
            finding.confidence_reason += f"; confirmed now by {confirmed} probe(s)"
        elif contradicted and not confirmed:
            finding.confidence = round(finding.confidence * CONTRADICT_KEEP, 3)
            finding.confidence_reason += f"; contradicted now by {contradicted} probe(s)"
        elif confirmed and contradicted:
            finding.confidence_reason += f"; probes disagree ({confirmed} confirm, {contradicted} contradict)"

    def rank(i: int) -> tuple[int, float]:
        verdicts = state.get(i, [])
        contradicted = "contradicts" in verdicts and "confirms" not in verdicts
        return (1 if contradicted else 0, -findings[i].confidence)

    order = sorted(range(len(findings)), key=rank)
    ranked = [findings[i] for i in order]
    if ranked:
        top_index = order[0]
        top = ranked[0]
        for i in order[1:]:
            if i in ruled_by and "confirms" not in state.get(i, []):
                probe = ruled_by[i]
                reason = f"ruled out by probe: {probe.call} -> {probe.status}: {probe.output}"[:400]
                other = findings[i]
                top.alternatives_ruled_out = [
                    r for r in top.alternatives_ruled_out if r.pattern_id != other.pattern_id
                ] + [
                    RuledOut(
                        category=other.category, pattern_id=other.pattern_id, score=other.score, reason=reason
                    )
                ]
        if top_index in ruled_by and "confirms" not in state.get(top_index, []):
            # Every finding was contradicted: the best remains, with the contradiction said.
            gaps.append(f"the probes contradict every finding, the best kept: {top.pattern_id}")
    gap = diagnosis.diagnostics_gap
    extra = "; ".join(gaps + ([ceiling_note] if ceiling_note else []))
    if extra:
        gap = f"{gap}; probes: {extra}" if gap else f"probes: {extra}"
    root = ranked[0].category if ranked and diagnosis.root_cause != Category.UNKNOWN else diagnosis.root_cause
    return diagnosis.model_copy(
        update={
            "findings": ranked,
            "root_cause": root,
            "confidence": ranked[0].confidence
            if ranked and root != Category.UNKNOWN
            else diagnosis.confidence,
            "diagnostics_gap": gap[:2000] if gap else None,
        }
    )


def plan_probes(diagnosis: Diagnosis, targets: Targets) -> list[tuple[int, ProbeSpec]]:
    """The probes of every finding, best finding first, each spec once (its first finding)."""
    out: list[tuple[int, ProbeSpec]] = []
    for index, finding in enumerate(diagnosis.findings):
        for spec in probes_for(finding, targets):
            out.append((index, spec))
    return out


def evidence_texts(diagnosis: Diagnosis, extra: Iterable[str | None] = ()) -> list[str]:
    """The texts targets are parsed from: every evidence line, and the exception message."""
    texts = [e.text for f in diagnosis.findings for e in f.evidence]
    if diagnosis.context and diagnosis.context.exception_message:
        texts.append(diagnosis.context.exception_message)
    texts += [t for t in extra if t]
    return texts
