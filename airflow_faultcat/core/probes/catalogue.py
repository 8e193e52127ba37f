"""Which probes test which finding, and how their outcomes move it.

A finding is a claim about the environment ("the database refused connections", "the disk is
full", "libvirtd is not running"). :func:`probes_for` picks the probes that test that claim
against what the evidence names (hosts, ports, URLs, paths, sockets, a missing conf key; the
finding's ``services_affected``; the failed try itself); :func:`explore` reads their results:

- a probe that sees the claimed condition still there **confirms** the finding (confidence up);
- a probe that sees it gone **contradicts** it (confidence down; a contradicted finding below a
  confirmed or uncontradicted one moves to the winner's ``alternatives_ruled_out``, naming the
  probe);
- a probe that could not run is a **diagnostics gap**, written down, never silent.

Besides the findings the log gave, every diagnosis is tested against a few **rival hypotheses**
(:data:`RIVALS`) that no log line proposes but that an engineer checks first: the worker's log or
temp folder full, the worker short of memory, Airflow itself unhealthy. A rival whose probes all
see nothing wrong is ruled out (in the top finding's ``alternatives_ruled_out``, with the call
that showed it); one whose probe sees the problem now becomes a finding of its own, with that
probe's observation as its evidence.

Whether a condition that is gone now was real then (a transient outage) is for the history and
flake detection to say; the probe says what is true now, with the call that saw it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from airflow_faultcat.core.models import (
    Category,
    Diagnosis,
    Evidence,
    FailureContext,
    Finding,
    RuledOut,
    Severity,
)
from airflow_faultcat.core.probes import ProbeKind, ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.targets import Targets, valid_path

Verdict = Literal["confirms", "contradicts", "gap"]
#: What a probe tests: a finding (its index in ``diagnosis.findings``) or a rival (its id).
Subject = int | str
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
_MEMORY_WORDS = ("memory", "allocat", "oom")
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


#: The connection to faultcat's Airflow REST API, which the Airflow probes read.
API_CONN_ID = "faultcat_api_default"


def _try_target(context: FailureContext | None) -> str | None:
    """``dag_id/run_id/task_id/map_index/try_number`` of the failed try, when the context has it."""
    if not context or not (context.dag_id and context.run_id and context.task_id and context.try_number):
        return None
    return f"{context.dag_id}/{context.run_id}/{context.task_id}/{context.map_index}/{context.try_number}"


def probes_for(
    finding: Finding, targets: Targets, context: FailureContext | None = None
) -> list[ProbeSpec]:
    """The probes that test ``finding`` against what the evidence named.

    :param finding: the hypothesis to test.
    :param targets: what the evidence names (:func:`~.targets.extract_targets`).
    :param context: the failure's context: the DagRun and the try that the Airflow probes look at
        (the DagRun's conf, the try's duration against its ``execution_timeout``).
    :return: at most :data:`MAX_PER_FINDING` probes, most telling first.
    """
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
    if "http" in finding.services_affected and targets.urls:
        # The server answered with a status then: ask it again (GET, no credentials). A TCP
        # connect says nothing of a status.
        for url in targets.urls:
            add("http", url)
    elif (
        finding.category in (Category.NETWORK, Category.SERVICE_DEPENDENCY, Category.TIMEOUT)
        and not any(w in words for w in _DNS_WORDS)
        and "execution_timeout" not in words  # the task's own clock, not a peer's silence
    ):
        for host, port in targets.endpoints:
            add("tcp", f"{host}:{port}")
    if finding.category in (Category.STORAGE, Category.RESOURCE_EXHAUSTION) and any(
        w in words for w in _SPACE_WORDS
    ):
        for path in targets.paths:
            add("disk", path)
    if finding.category == Category.RESOURCE_EXHAUSTION and any(w in words for w in _MEMORY_WORDS):
        # "Unable to allocate 74.5 GiB": would that much fit on this worker now?
        for size in sorted(targets.alloc_bytes, reverse=True)[:1]:
            add("memory", f"worker:{size}")
    if finding.category in (Category.CONFIGURATION, Category.STORAGE):
        # "No such file or directory": is the path there now?
        for path in targets.missing_paths:
            add("path", path)
    if (
        finding.category == Category.CONFIGURATION
        and "key" in words
        and context
        and context.dag_id
        and context.run_id
    ):
        # "KeyError: 'batch_id'": is that key in the DagRun's conf?
        for key in targets.conf_keys:
            add("dag_run_conf", f"{context.dag_id}/{context.run_id}/{key}")
    try_target = _try_target(context)
    if finding.category == Category.TIMEOUT and "execution_timeout" in words and try_target:
        add("task_timeout", try_target)
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
        add("airflow_health", API_CONN_ID)
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


@dataclass(frozen=True)
class Rival:
    """A hypothesis no log line proposes, tested on every failure.

    :param rival_id: a stable id, used as the ``pattern_id`` of the finding it becomes or of its
        ``alternatives_ruled_out`` entry.
    :param category: the root-cause category it stands for.
    :param title: what it claims.
    :param remediation: what to do when a probe sees it.
    :param probes: the probes that test it, from the failure's context.
    """

    rival_id: str
    category: Category
    title: str
    remediation: tuple[str, ...]
    probes: Callable[[FailureContext | None], list[ProbeSpec]]


def _worker_folders(context: FailureContext | None) -> list[ProbeSpec]:
    # The folders the failure callback measured on the worker (log and temp), else this host's temp.
    folders = list(context.host.disk_free_bytes) if context and context.host else []
    paths = [p for p in (valid_path(f) for f in folders or [tempfile.gettempdir()]) if p]
    return [ProbeSpec(kind="disk", target=p) for p in dict.fromkeys(paths)][:3]


#: The rival hypotheses every diagnosis is tested against.
RIVALS: tuple[Rival, ...] = (
    Rival(
        "probe.worker_disk",
        Category.STORAGE,
        "The worker's log or temp folder is out of space or inodes",
        ("Free space in the worker's log and temp folders (old logs, temp files).",),
        _worker_folders,
    ),
    Rival(
        "probe.worker_memory",
        Category.RESOURCE_EXHAUSTION,
        "The worker host (or its cgroup) is short of memory",
        ("Check what else runs on the worker; lower parallelism or give the worker more memory.",),
        lambda _: [ProbeSpec(kind="memory", target="worker")],
    ),
    Rival(
        "probe.airflow_health",
        Category.SERVICE_DEPENDENCY,
        "Airflow itself is unhealthy (metadatabase, scheduler, triggerer or dag-processor)",
        ("Check the unhealthy component's process and logs; `airflow jobs check` per component.",),
        lambda _: [ProbeSpec(kind="airflow_health", target=API_CONN_ID)],
    ),
)
_RIVALS = {r.rival_id: r for r in RIVALS}
#: The confidence of a rival that a probe sees now: worth reading, below a confirmed finding.
RIVAL_CONFIDENCE = 0.45


#: HTTP statuses that say the credentials were refused.
_AUTH_STATUSES = (401, 403, 407)


def verdict(result: ProbeResult, finding: Finding | None = None) -> Verdict:
    """What a probe's outcome says of the finding it tests: the claimed condition still there
    (``failed``: confirms), gone (``ok``: contradicts), or not looked at (``gap``).

    An HTTP status is read against the finding's claim: 401/403/407 confirm a credential finding
    (a success contradicts it; another error says nothing of it); for a service, network or
    timeout finding an answer below 500 shows the service up (contradicts) and a 5xx confirms.
    """
    if result.status == "could_not_run":
        return "gap"
    status = result.observed.get("status")
    if result.spec.kind == "http" and finding is not None and isinstance(status, int):
        if finding.category == Category.CREDENTIAL:
            if status in _AUTH_STATUSES:
                return "confirms"
            return "contradicts" if status < 400 else "gap"
        if finding.category in (Category.SERVICE_DEPENDENCY, Category.NETWORK, Category.TIMEOUT):
            return "confirms" if status >= 500 else "contradicts"
    return "confirms" if result.status == "failed" else "contradicts"


def probe_evidence(result: ProbeResult) -> Evidence:
    """A probe's observation as Evidence (source ``probe``): the call, the outcome, the output."""
    text = f"{result.call} -> {result.status} ({result.duration_ms:.0f} ms): {result.output}"
    if result.host:
        text = f"[on {result.host}] {text}"
    return Evidence(source="probe", text=" ".join(text.split())[:500])


def _ruled_out_reason(result: ProbeResult) -> str:
    return f"ruled out by probe: {result.call} -> {result.status}: {result.output}"[:400]


def _rival_finding(rival: Rival, seen: list[ProbeResult]) -> Finding:
    return Finding(
        category=rival.category,
        pattern_id=rival.rival_id,
        title=rival.title,
        severity=Severity.HIGH,
        confidence=RIVAL_CONFIDENCE,
        confidence_reason=f"seen now by {len(seen)} probe(s); no log line says so",
        score=0.0,
        evidence=[probe_evidence(r) for r in seen],
        remediation=list(rival.remediation),
    )


def explore(
    diagnosis: Diagnosis,
    results: Sequence[tuple[Subject, ProbeResult]],
    *,
    ceiling_note: str | None = None,
) -> Diagnosis:
    """The diagnosis after the probes: confidences moved, contradicted findings and rivals ruled
    out, rivals seen now added as findings, gaps said.

    :param diagnosis: the deterministic diagnosis.
    :param results: (subject, result) pairs: the subject is the index of a finding in
        ``diagnosis.findings`` or the id of a rival in :data:`RIVALS`.
    :param ceiling_note: set when the time ceiling stopped probing early.
    :return: a new Diagnosis; the input is not changed.
    """
    findings = [f.model_copy(deep=True) for f in diagnosis.findings]
    state: dict[int, list[Verdict]] = {}
    gaps: list[str] = []
    ruled_by: dict[int, ProbeResult] = {}
    rivals: dict[str, list[ProbeResult]] = {}
    for subject, result in results:
        if isinstance(subject, str):
            if subject in _RIVALS:
                rivals.setdefault(subject, []).append(result)
                if verdict(result) == "gap":
                    gaps.append(f"{result.spec.kind} {result.spec.target}: {result.output}")
            continue
        if not 0 <= subject < len(findings):
            continue
        v = verdict(result, findings[subject])
        if v == "gap":
            gaps.append(f"{result.spec.kind} {result.spec.target}: {result.output}")
        state.setdefault(subject, []).append(v)
        findings[subject].evidence.append(probe_evidence(result))
        if v == "contradicts":
            ruled_by.setdefault(subject, result)
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
    # A rival that a probe sees now is a finding; one that every probe saw healthy is ruled out.
    rivals_out: list[tuple[Rival, ProbeResult]] = []
    for rival_id, seen in rivals.items():
        rival = _RIVALS[rival_id]
        verdicts = [verdict(r) for r in seen]
        if "confirms" in verdicts:
            state[len(findings)] = ["confirms"]
            findings.append(_rival_finding(rival, [r for r in seen if verdict(r) == "confirms"]))
        elif verdicts and all(v == "contradicts" for v in verdicts):
            rivals_out.append((rival, seen[0]))

    def rank(i: int) -> tuple[int, float]:
        verdicts = state.get(i, [])
        contradicted = "contradicts" in verdicts and "confirms" not in verdicts
        return (1 if contradicted else 0, -findings[i].confidence)

    order = sorted(range(len(findings)), key=rank)
    ranked = [findings[i] for i in order]
    if ranked:
        top_index = order[0]
        top = ranked[0]
        moved = [
            RuledOut(
                category=findings[i].category,
                pattern_id=findings[i].pattern_id,
                score=findings[i].score,
                reason=_ruled_out_reason(ruled_by[i]),
            )
            for i in order[1:]
            if i in ruled_by and "confirms" not in state.get(i, [])
        ] + [
            RuledOut(category=r.category, pattern_id=r.rival_id, score=0.0, reason=_ruled_out_reason(p))
            for r, p in rivals_out
        ]
        ids = {m.pattern_id for m in moved}
        kept = [r for r in top.alternatives_ruled_out if r.pattern_id not in ids]
        top.alternatives_ruled_out = kept + moved
        if top_index in ruled_by and "confirms" not in state.get(top_index, []):
            # Every finding was contradicted: the best remains, with the contradiction said.
            gaps.append(f"the probes contradict every finding, the best kept: {top.pattern_id}")
    gap = diagnosis.diagnostics_gap
    # A probe that tests several findings is one gap, said once.
    extra = "; ".join(dict.fromkeys(gaps + ([ceiling_note] if ceiling_note else [])))
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


def plan_probes(diagnosis: Diagnosis, targets: Targets) -> list[tuple[Subject, ProbeSpec]]:
    """The probes of every finding, best finding first, then those of the rivals."""
    out: list[tuple[Subject, ProbeSpec]] = []
    for index, finding in enumerate(diagnosis.findings):
        for spec in probes_for(finding, targets, diagnosis.context):
            out.append((index, spec))
    for rival in RIVALS:
        for spec in rival.probes(diagnosis.context):
            out.append((rival.rival_id, spec))
    return out


def evidence_texts(diagnosis: Diagnosis, extra: Iterable[str | None] = ()) -> list[str]:
    """The texts targets are parsed from: every evidence line, and the exception with its type."""
    texts = [e.text for f in diagnosis.findings for e in f.evidence]
    context = diagnosis.context
    if context and context.exception_message:
        kind = (context.exception_type or "").rpartition(".")[2]
        texts.append(f"{kind}: {context.exception_message}" if kind else context.exception_message)
    texts += [t for t in extra if t]
    return texts
