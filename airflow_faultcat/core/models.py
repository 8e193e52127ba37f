"""Versioned data models shared by every part of airflow-faultcat.

Each top-level document carries a ``schema_version`` (``faultcat.<name>.v<N>``) so that a stored
evidence bundle or a recovery DagRun's conf can be read back by a later release. The JSON Schemas
are exported with ``faultcat schema NAME`` (see :data:`SCHEMAS`).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Category(str, Enum):
    """Root-cause categories. ``UNKNOWN`` is the absence of a deciding match, never a pattern's."""

    VIRTUALIZATION = "VIRTUALIZATION"
    NETWORK = "NETWORK"
    STORAGE = "STORAGE"
    SERVICE_DEPENDENCY = "SERVICE_DEPENDENCY"
    CREDENTIAL = "CREDENTIAL"
    RESOURCE_EXHAUSTION = "RESOURCE_EXHAUSTION"
    CONFIGURATION = "CONFIGURATION"
    TIMEOUT = "TIMEOUT"
    STATE_MISMATCH = "STATE_MISMATCH"
    UNKNOWN = "UNKNOWN"


class Severity(str, Enum):
    """How bad a matched failure is, as a pattern declares it."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


class HostSnapshot(_Model):
    """Resources of the worker host at failure time.

    :param hostname: the worker's host name.
    :param disk_free_bytes: free bytes per folder (log folder, temp folder), keyed by path.
    :param memory_available_bytes: ``MemAvailable`` from ``/proc/meminfo``.
    :param memory_total_bytes: ``MemTotal`` from ``/proc/meminfo``.
    :param load_average: 1, 5 and 15 minute load averages (``os.getloadavg()``).
    """

    hostname: str | None = None
    disk_free_bytes: dict[str, int] = Field(default_factory=dict)
    memory_available_bytes: int | None = Field(default=None, ge=0)
    memory_total_bytes: int | None = Field(default=None, ge=0)
    load_average: list[float] | None = None


class FailureContext(_Model):
    """What was captured when a TaskInstance failed.

    Built by the failure callback or listener from the Airflow context (``ti``, ``exception``,
    ``dag_run``); every field is optional so that a log diagnosed on its own still has a context.

    :param dag_id: the Dag's id.
    :param run_id: the DagRun's run_id.
    :param task_id: the task's id.
    :param map_index: the mapped index, ``-1`` for an unmapped task.
    :param try_number: the try that failed (1-based).
    :param max_tries: the TaskInstance's ``max_tries``.
    :param exception_type: qualified class name of the exception, e.g.
        ``psycopg2.OperationalError``.
    :param exception_message: ``str(exception)``.
    :param traceback: the formatted traceback text.
    :param hostname: the host the task ran on.
    :param host: resources of the host at failure time.
    :param captured_at: when the context was captured (UTC).
    :param log_url: where the task log can be read, when known.
    """

    schema_version: Literal["faultcat.failure_context.v1"] = "faultcat.failure_context.v1"
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int = -1
    try_number: int | None = Field(default=None, ge=0)
    max_tries: int | None = Field(default=None, ge=0)
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: str | None = None
    hostname: str | None = None
    host: HostSnapshot | None = None
    captured_at: datetime | None = None
    log_url: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


EvidenceSource = Literal["log", "exception", "traceback", "api", "command", "probe"]


class Evidence(_Model):
    """One observation a finding rests on.

    :param source: where it was seen: ``log`` (the task log), ``exception`` / ``traceback`` (the
        FailureContext), ``api``, ``command`` or ``probe``.
    :param line: 1-based line number in the log (``None`` for other sources).
    :param text: the excerpt (one line, at most a few hundred characters, scrubbed before it
        leaves the process).
    :param field: the JSON field the text came from in an Airflow 3 JSON log line (``event``,
        ``error_detail``), if any.
    :param pattern_id: the pattern that matched this excerpt, if any.
    """

    source: EvidenceSource = "log"
    line: int | None = Field(default=None, ge=1)
    text: str
    field: str | None = None
    pattern_id: str | None = None


class RuledOut(_Model):
    """An alternative explanation the analyzer considered and ranked lower, with why."""

    category: Category
    pattern_id: str
    score: float = Field(ge=0)
    reason: str


class Finding(_Model):
    """A root-cause hypothesis backed by evidence.

    :param category: the root-cause category.
    :param pattern_id: the pattern that produced it.
    :param title: the pattern's one-line description.
    :param severity: the pattern's severity.
    :param confidence: 0-1, how sure the analyzer is that this is the root cause.
    :param confidence_reason: one line saying why the confidence is what it is.
    :param score: the raw ranking score (not a probability).
    :param evidence: the lines it rests on (first and last occurrences when there are many).
    :param occurrences: how many lines matched in all.
    :param alternatives_ruled_out: other hypotheses ranked below this one.
    """

    category: Category
    pattern_id: str
    title: str
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    confidence_reason: str
    score: float = Field(ge=0)
    evidence: list[Evidence] = Field(default_factory=list)
    occurrences: int = Field(default=0, ge=0)
    services_affected: list[str] = Field(default_factory=list)
    recovery_hint: str = ""
    remediation: list[str] = Field(default_factory=list)
    alternatives_ruled_out: list[RuledOut] = Field(default_factory=list)


class ScanStats(_Model):
    """How much the analyzer read and how long it took.

    :param bytes_scanned: bytes of log read.
    :param bytes_skipped: of those, bytes of over-long lines (past the analyzer's per-line limit,
        1 MiB) that were read but not matched.
    """

    bytes_scanned: int = 0
    bytes_skipped: int = 0
    lines_scanned: int = 0
    duration_ms: float = 0.0
    patterns: int = 0
    engine: str = ""


class ReplayCommand(_Model):
    """A command that reproduces a failure.

    :param kind: ``task`` (``airflow tasks test``: the task alone, in its DagRun), ``dag``
        (``airflow dags test``: the whole Dag with the DagRun's conf) or ``clear`` (the REST call
        that clears the failed TaskInstance so the scheduler reruns it).
    :param command: the shell command, quoted for a POSIX shell.
    :param note: what it does and what it needs.
    """

    kind: Literal["task", "dag", "clear"]
    command: str
    note: str = ""


class Diagnosis(_Model):
    """Ranked findings for one failure.

    :param root_cause: the category of the best finding, or ``UNKNOWN`` when nothing decides.
    :param confidence: 0-1, the best finding's confidence (0 for ``UNKNOWN``).
    :param confidence_reason: one line saying why.
    :param summary: one human sentence.
    :param findings: all findings, best first.
    :param diagnostics_gap: for ``UNKNOWN`` (or weak answers), what evidence is missing.
    :param fingerprint: the failure's fingerprint id (``fp-<16 hex>``), when the task is known.
    :param fingerprint_basis: what it hashes besides the task: ``pattern:<id>`` or
        ``template:<message template>``.
    :param replay: commands that reproduce the failure (set by the recovery DAG).
    """

    schema_version: Literal["faultcat.diagnosis.v1"] = "faultcat.diagnosis.v1"
    root_cause: Category
    confidence: float = Field(ge=0.0, le=1.0)
    confidence_reason: str
    summary: str
    findings: list[Finding] = Field(default_factory=list)
    diagnostics_gap: str | None = None
    context: FailureContext | None = None
    stats: ScanStats = Field(default_factory=ScanStats)
    fingerprint: str | None = None
    fingerprint_basis: str | None = None
    replay: list[ReplayCommand] = Field(default_factory=list)


class RecoveryAction(str, Enum):
    """What a recovery option does."""

    RETRY = "RETRY"
    WAIT_AND_RETRY = "WAIT_AND_RETRY"
    MANUAL_FIX = "MANUAL_FIX"
    ESCALATE = "ESCALATE"
    CUSTOM = "CUSTOM"


class Risk(str, Enum):
    """How much harm an option can do if the diagnosis is wrong."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class RecoveryOption(_Model):
    """One action a recovery plan may take.

    :param action: what it does.
    :param handler: for ``CUSTOM``, the registered handler's name.
    :param risk: harm if the diagnosis is wrong.
    :param confidence: 0-1, how likely the option fixes the failure.
    :param expected_duration_seconds: how long it should take, in seconds.
    :param steps: what will be done (text; diagnostic commands are shown, never executed).
    :param preconditions: what must hold before it may run.
    :param rationale: why it ranks where it does.
    :param requires_approval: whether a human must approve it first.
    """

    action: RecoveryAction
    handler: str | None = None
    risk: Risk = Risk.LOW
    confidence: float = Field(ge=0.0, le=1.0)
    expected_duration_seconds: float = Field(default=0.0, ge=0)
    steps: list[str] = Field(default_factory=list)
    preconditions: list[str] = Field(default_factory=list)
    rationale: str = ""
    requires_approval: bool = False
    approval_reason: str | None = None
    wait_seconds: float | None = Field(default=None, ge=0)
    blocked_by: str | None = None
    score: float = Field(default=0.0, ge=0)


class GuardrailState(_Model):
    """What the guardrails (kept in Redis) say about one failure when it is planned.

    :param available: whether the guardrail store could be read; when not, nothing is retried.
    :param error: why it could not be read.
    :param retries_used: automatic retries of this (dag_id, task_id) in the budget window.
    :param retry_budget: retries allowed per (dag_id, task_id) per window.
    :param budget_window_seconds: the budget window, in seconds.
    :param circuit_open: whether automatic retries of this Dag are stopped.
    :param circuit_failures: failed recoveries of this Dag in the circuit window.
    :param circuit_open_until: when an open circuit closes again (UTC).
    :param storm_count: TaskInstances of this Dag with the same root cause in the storm window.
    :param already_handled_by: the recovery DagRun that already handled this very failure (try).
    """

    available: bool = True
    error: str | None = None
    retries_used: int = Field(default=0, ge=0)
    retry_budget: int = Field(default=0, ge=0)
    budget_window_seconds: int = Field(default=0, ge=0)
    circuit_open: bool = False
    circuit_failures: int = Field(default=0, ge=0)
    circuit_open_until: datetime | None = None
    storm_count: int = Field(default=1, ge=0)
    already_handled_by: str | None = None


DecisionMode = Literal["execute", "approval", "escalate", "skip"]


class RecoveryDecision(_Model):
    """What the plan does: the option taken and the rule that decided.

    :param mode: ``execute`` (run the option now), ``approval`` (wait for a human first),
        ``escalate`` (hand it to humans) or ``skip`` (nothing to do, e.g. already handled).
    :param option: index into the plan's options of the option taken, if any.
    :param action: the action taken.
    :param rule: the rule that decided, e.g. ``policy NETWORK retry=auto``.
    :param reason: one sentence for humans.
    """

    mode: DecisionMode
    option: int | None = None
    action: RecoveryAction | None = None
    handler: str | None = None
    rule: str
    reason: str


class RecoveryPlan(_Model):
    """Recovery options for one diagnosis, ranked highest first, and the decision taken.

    :param policy_sources: where the policy came from (defaults, config, Dag tags, Dag params).
    :param policy_warnings: overrides that were ignored because they were invalid.
    """

    schema_version: Literal["faultcat.recovery_plan.v1"] = "faultcat.recovery_plan.v1"
    root_cause: Category
    options: list[RecoveryOption] = Field(default_factory=list)
    created_at: datetime | None = None
    decision: RecoveryDecision | None = None
    guardrails: GuardrailState | None = None
    policy_sources: list[str] = Field(default_factory=list)
    policy_warnings: list[str] = Field(default_factory=list)


OutcomeStatus = Literal[
    "retried",
    "retry_succeeded",
    "retry_failed",
    "handled",
    "awaiting_approval",
    "rejected",
    "escalated",
    "merged",
    "skipped",
    "quarantined",
    "failed",
]


class RecoveryOutcome(_Model):
    """What the recovery DagRun did, by which rule.

    :param status: ``retried`` (the TaskInstance was cleared), ``retry_succeeded`` /
        ``retry_failed`` (how its rerun ended), ``handled`` (a custom handler acted without
        clearing the TaskInstance), ``awaiting_approval``, ``rejected`` (a human or the
        approval timeout said no), ``escalated``, ``merged`` (counted into another run's
        escalation of the same storm), ``skipped`` (nothing done, e.g. already handled) or
        ``failed`` (the action itself failed).
    :param action: the action taken, if any.
    :param rule: the rule that decided.
    :param detail: one sentence for humans.
    :param escalation: where it was escalated (``github``: number, url, action; ``slack``: channel).
    :param recorded_at: when this was recorded (UTC).
    """

    status: OutcomeStatus
    action: RecoveryAction | None = None
    rule: str = ""
    detail: str = ""
    escalation: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime | None = None


class FailureDigest(_Model):
    """One record per failed DagRun: what failed first, why, and how to reproduce it.

    :param dag_id: the Dag.
    :param run_id: the DagRun.
    :param root_cause: the category of the first failing task's diagnosis.
    :param first_failed_task: the task that failed first (by end date), with ``map_index``.
    :param top_evidence: its diagnosis's top evidence line.
    :param fingerprints: the fingerprints of the DagRun's failures known so far.
    :param failed_tasks: the DagRun's failed TaskInstances (``task_id[map_index]``).
    :param replay: commands that reproduce the first failure.
    """

    schema_version: Literal["faultcat.failure_digest.v1"] = "faultcat.failure_digest.v1"
    dag_id: str
    run_id: str
    root_cause: str
    first_failed_task: str
    top_evidence: str | None = None
    fingerprints: list[str] = Field(default_factory=list)
    failed_tasks: list[str] = Field(default_factory=list)
    replay: list[ReplayCommand] = Field(default_factory=list)


class EvidenceBundle(_Model):
    """What is published about one failure: evidence, findings and suggestions, scrubbed.

    :param bundle_id: a stable id (derived from the failure's ids).
    :param context: the FailureContext.
    :param evidence: every observation, in the order seen.
    :param findings: ranked findings (as in the Diagnosis).
    :param suggestions: what a human should do next, best first.
    :param diagnosis: the full Diagnosis.
    :param plan: the RecoveryPlan, when one was made.
    :param outcome: what the recovery did about it, by which rule.
    :param digest: the failure digest of the DagRun (one record per failed DagRun).
    :param history: what the history says of the fingerprint (occurrences, first and last seen,
        status: new, healthy, flaky or broken; flake class; quarantine).
    :param redactions: how many secrets were scrubbed out of the bundle.
    """

    schema_version: Literal["faultcat.evidence_bundle.v1"] = "faultcat.evidence_bundle.v1"
    bundle_id: str
    created_at: datetime
    context: FailureContext | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    diagnosis: Diagnosis
    plan: RecoveryPlan | None = None
    outcome: RecoveryOutcome | None = None
    digest: FailureDigest | None = None
    history: dict[str, Any] | None = None
    redactions: int = Field(default=0, ge=0)

    @field_validator("bundle_id")
    @classmethod
    def _bundle_id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("bundle_id must not be blank")
        return value


DomainState = Literal[
    "nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended", "unknown"
]


class DomainObservation(_Model):
    """One libvirt domain as a scan saw it.

    :param name: the domain's name.
    :param uuid: its UUID.
    :param state: libvirt's state (``virDomainState``) by name.
    :param reason: libvirt's state reason code for that state, if known.
    """

    name: str
    uuid: str | None = None
    state: DomainState
    reason: int | None = None


class DomainSnapshot(_Model):
    """Every domain of one libvirt connection, read in one bulk call.

    :param uri: the libvirt URI (without credentials).
    :param taken_at: when it was read (UTC).
    :param query: the call that read it, e.g. ``virConnectGetAllDomainStats(STATE)``.
    :param domains: the domains by name.
    """

    uri: str
    taken_at: datetime
    query: str
    domains: dict[str, DomainObservation] = Field(default_factory=dict)


#: Models whose JSON Schema ``faultcat schema NAME`` exports, by name.
SCHEMAS: dict[str, type[BaseModel]] = {
    "failure-context": FailureContext,
    "evidence": Evidence,
    "finding": Finding,
    "diagnosis": Diagnosis,
    "recovery-option": RecoveryOption,
    "recovery-plan": RecoveryPlan,
    "recovery-outcome": RecoveryOutcome,
    "evidence-bundle": EvidenceBundle,
}


def json_schema(name: str) -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of the model called ``name``.

    :param name: a key of :data:`SCHEMAS`, e.g. ``diagnosis``; underscores and case are ignored.
    :raises KeyError: if no model has that name; the message lists the names.
    """
    key = name.strip().lower().replace("_", "-")
    aliases = {m.__name__.lower(): k for k, m in SCHEMAS.items()}
    key = aliases.get(key.replace("-", ""), key)
    if key not in SCHEMAS:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(sorted(SCHEMAS))}")
    schema = SCHEMAS[key].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"faultcat.{key.replace('-', '_')}.v1"
    return schema
