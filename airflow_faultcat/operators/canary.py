"""The canary: one cycle of snapshot, invariant checks, fire/clear transitions and Slack alerts."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseOperator

from airflow_faultcat import conf
from airflow_faultcat.core.invariants import (
    REGISTRY,
    CanarySettings,
    CycleReport,
    InvariantViolation,
    by_id,
    run_checks,
)
from airflow_faultcat.core.scrub import scrub

log = logging.getLogger(__name__)

#: Redis scope of the canary's open violations (the shadow scan's are under ``shadow``).
SCOPE = "canary"
#: How long the open violations live without a cycle, in seconds.
STATE_TTL = 7 * 24 * 3600


def fire_text(violation: InvariantViolation) -> str:
    """The Slack text of a violation that fired: invariant, what was seen, where, and the runbook."""
    inv = by_id(violation.invariant_id)
    observed = json.dumps(violation.observed_state, default=str, sort_keys=True)
    return scrub(
        f":rotating_light: *[faultcat canary] {inv.id} {inv.severity}: {inv.name}*\n"
        f"{violation.message}\n"
        f"Observed: `{observed[:1500]}`\n"
        f"Seen by: `{violation.signal_query[:500]}`\n"
        f"Runbook: {inv.runbook}"
    )


def clear_text(key: str, record: dict[str, Any]) -> str:
    """The Slack text of a violation that cleared."""
    invariant_id = key.split("|", 1)[0]
    try:
        name = by_id(invariant_id).name
    except KeyError:
        name = "unknown invariant"
    since = record.get("fired_at", "?")
    return scrub(
        f":white_check_mark: *[faultcat canary] {invariant_id} cleared: {name}*\n"
        f"{record.get('message', key)} (open since {since})"
    )


def settings_from_conf() -> CanarySettings:
    """The ``[faultcat] canary_*`` thresholds.

    :raises ValueError: naming the option when a value is not a number or out of range.
    """
    from pydantic import ValidationError

    try:
        return CanarySettings(
            timeout_buffer_seconds=conf.get_float("canary_timeout_buffer_seconds"),
            heartbeat_stale_seconds=conf.get_float("canary_heartbeat_stale_seconds"),
            queued_seconds=conf.get_float("canary_queued_seconds"),
            restart_count=conf.get_int("canary_restart_count"),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"[faultcat] canary settings: {err['loc'][0]}: {err['msg']}") from None


def _libvirt_reader() -> Any:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return None
    from airflow_faultcat.hooks.libvirt import snapshot_of

    return snapshot_of


def _containers_reader(docker_conn_id: str) -> Any:
    if not docker_conn_id:
        return None
    from airflow_faultcat.hooks.containers import container_snapshot

    return lambda: container_snapshot(docker_conn_id)


def run_cycle(
    *,
    faultcat_api_conn_id: str = "faultcat_api_default",
    redis_conn_id: str | None = None,
    docker_conn_id: str | None = None,
    slack_conn_id: str | None = None,
    slack_channel: str | None = None,
    settings: CanarySettings | None = None,
    persist: bool = True,
    alert: bool = True,
) -> tuple[CycleReport, list[dict[str, Any]]]:
    """One canary cycle: read the snapshot, check every invariant, record and announce what changed.

    The open violations live in Redis (scope ``canary``): a violation fires once, is not announced
    again while it lasts, and clears once. An invariant skipped because its source could not be read
    leaves its open violations as they were. Without Redis nothing is recorded and nothing is
    announced (every open violation would fire again on each cycle).

    :param faultcat_api_conn_id: the ``faultcat_api`` connection (REST API and health endpoint).
    :param redis_conn_id: faultcat's Redis (default ``[faultcat] redis_conn_id``).
    :param docker_conn_id: a ``docker`` connection to the container engine (default
        ``[faultcat] docker_conn_id``; empty: containers not checked).
    :param slack_conn_id: the Slack connection (default ``[faultcat] slack_conn_id``).
    :param slack_channel: where alerts go (default ``[faultcat] slack_channel``; empty: no alerts).
    :param settings: thresholds (default the ``[faultcat] canary_*`` options).
    :param persist: record the transitions in Redis.
    :param alert: post fired and cleared violations to Slack.
    :return: the report (``cycle_duration_ms`` covers snapshot and checks) and the alerts sent
        (``{"key", "kind": "fired"|"cleared", "channel"}`` or with ``"error"``).
    """
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook
    from airflow_faultcat.hooks.canary import collect_snapshot
    from airflow_faultcat.hooks.state import FaultcatStateHook

    started = time.perf_counter()
    settings = settings or settings_from_conf()
    docker_conn_id = conf.get_str("docker_conn_id") if docker_conn_id is None else docker_conn_id
    state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"))
    try:
        client = state.client
    except Exception as exc:
        log.warning("faultcat canary: Redis client: %s", exc)
        client = None
    api = AirflowApiHook(faultcat_api_conn_id, timeout=5)
    try:
        snap = collect_snapshot(
            api=api,
            redis_client=client,
            redis_prefix=state.prefix,
            libvirt_snapshot_of=_libvirt_reader(),
            containers=_containers_reader(docker_conn_id),
        )
    finally:
        api.close()
    snapshot_ms = (time.perf_counter() - started) * 1000
    open_records: dict[str, dict[str, Any]] = {}
    can_persist = persist and "redis" not in snap.sources_unavailable
    if can_persist:
        try:
            open_records = state.open_violations(SCOPE)
        except Exception as exc:
            snap.sources_unavailable["redis"] = scrub(str(exc))[:300]
            can_persist = False
    if can_persist:
        _remember_zombies(state, snap)
    report = run_checks(snap, open_records, settings)
    alerts: list[dict[str, Any]] = []
    if can_persist:
        now = datetime.now(timezone.utc).isoformat()
        fired = {
            v.key: {"message": v.message, "observed_state": v.observed_state, "fired_at": now}
            for v in report.transitions.fired
        }
        state.apply_transitions(fired, report.transitions.cleared, STATE_TTL, SCOPE)
        if alert:
            alerts = _announce(report, open_records, slack_conn_id, slack_channel)
    else:
        # Without the open set every violation would look new: report, do not announce.
        report.transitions.fired = []
    report.snapshot_ms = round(snapshot_ms, 2)
    report.cycle_duration_ms = round((time.perf_counter() - started) * 1000, 2)
    return report, alerts


def _remember_zombies(state: Any, snap: Any) -> None:
    """Give each zombie seen now the time a cycle first saw it, and keep that for the next cycle."""
    from airflow_faultcat.core.invariants import zombie_key

    try:
        before = state.zombies_first_seen(SCOPE)
        now = {
            zombie_key(p): before.get(zombie_key(p), snap.taken_at.isoformat())
            for p in snap.processes
            if p.status == "zombie"
        }
        state.set_zombies_first_seen(now, STATE_TTL, SCOPE)
    except Exception as exc:
        snap.sources_unavailable["redis"] = scrub(f"zombie history: {exc}")[:300]
        return
    snap.zombies_first_seen = {k: datetime.fromisoformat(v) for k, v in now.items()}


def _announce(
    report: CycleReport,
    open_records: dict[str, dict[str, Any]],
    slack_conn_id: str | None,
    slack_channel: str | None,
) -> list[dict[str, Any]]:
    channel = slack_channel if slack_channel is not None else conf.get_str("slack_channel")
    if not channel:
        return []
    from airflow_faultcat.exceptions import EscalationError
    from airflow_faultcat.notifications.escalation import notify_slack_text

    conn_id = slack_conn_id or conf.get_str("slack_conn_id")
    messages = [(v.key, "fired", fire_text(v)) for v in report.transitions.fired]
    messages += [(k, "cleared", clear_text(k, open_records.get(k, {}))) for k in report.transitions.cleared]
    out = []
    for key, kind, text in messages:
        try:
            notify_slack_text(slack_conn_id=conn_id, channel=channel, text=text)
            out.append({"key": key, "kind": kind, "channel": channel})
        except EscalationError as exc:
            # The transition is recorded either way: a Slack outage must not re-fire it later.
            log.warning("faultcat canary: Slack alert for %s failed: %s", key, exc)
            out.append({"key": key, "kind": kind, "channel": channel, "error": str(exc)})
    return out


def report_table(report: CycleReport) -> str:
    """A plain-text summary of a cycle for the task log and the CLI."""
    lines = [
        f"canary cycle {report.taken_at.isoformat()}: {len(report.checks_run)} checks run, "
        f"{len(report.checks_skipped)} skipped, {len(report.violations)} violations "
        f"({len(report.transitions.fired)} fired, {len(report.transitions.cleared)} cleared), "
        f"cycle_duration_ms={report.cycle_duration_ms}",
    ]
    for source, why in sorted(report.sources_unavailable.items()):
        lines.append(f"  source unavailable: {source}: {why}")
    for skipped in report.checks_skipped:
        lines.append(f"  skipped {skipped.invariant_id}: {skipped.reason}")
    fired = {v.key for v in report.transitions.fired}
    for v in report.violations:
        inv = by_id(v.invariant_id)
        mark = "FIRED" if v.key in fired else "open"
        lines.append(f"  {mark:<7} {v.invariant_id} {inv.severity:<8} {v.message}")
    for key in report.transitions.cleared:
        lines.append(f"  CLEARED {key}")
    for key in report.transitions.undecided:
        lines.append(f"  undecided {key} (its source is unavailable)")
    return "\n".join(lines)


class CanaryOperator(BaseOperator):
    """Check Airflow's own health once: every canary invariant over a fresh snapshot.

    Reads the REST API (running and queued TaskInstances and DagRuns, pools, heartbeats), faultcat's
    Redis keys, this worker's processes, libvirt (domains that ``libvirt://`` assets expect running)
    and, when configured, the container engine. A source that cannot be read is listed in
    ``sources_unavailable`` and its invariants are skipped, never reported green or red. New
    violations are posted to Slack once, with the runbook hint; fixed ones once as cleared.
    Run it on the worker whose processes should be watched (``queue``/``pool``).

    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: faultcat's Redis (default ``[faultcat] redis_conn_id``).
    :param docker_conn_id: the container engine (default ``[faultcat] docker_conn_id``).
    :param slack_conn_id: the Slack connection (default ``[faultcat] slack_conn_id``).
    :param slack_channel: where alerts go (default ``[faultcat] slack_channel``; empty: none).
    :param fail_on: fail the task when a violation of this severity or worse is open
        (``critical``, ``major``, ``minor``); ``None`` (default): never, the alerts are the signal.
    :return: the :class:`~airflow_faultcat.core.invariants.CycleReport` as JSON, plus ``alerts``.
    """

    template_fields: Sequence[str] = ("slack_channel",)
    ui_color = "#fff3bf"

    def __init__(
        self,
        *,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        docker_conn_id: str | None = None,
        slack_conn_id: str | None = None,
        slack_channel: str | None = None,
        fail_on: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fail_on not in (None, "critical", "major", "minor"):
            raise ValueError(f"fail_on must be critical, major, minor or None, got {fail_on!r}")
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id
        self.docker_conn_id = docker_conn_id
        self.slack_conn_id = slack_conn_id
        self.slack_channel = slack_channel
        self.fail_on = fail_on

    def execute(self, context: Any) -> dict[str, Any]:
        report, alerts = run_cycle(
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            docker_conn_id=self.docker_conn_id,
            slack_conn_id=self.slack_conn_id,
            slack_channel=self.slack_channel,
        )
        self.log.info("faultcat: %s", report_table(report))
        if self.fail_on:
            order = ["critical", "major", "minor"]
            worst = [
                v
                for v in report.violations
                if order.index(by_id(v.invariant_id).severity) <= order.index(self.fail_on)
            ]
            if worst:
                from airflow_faultcat.exceptions import FaultcatError

                raise FaultcatError(
                    f"canary: {len(worst)} violation(s) at {self.fail_on} or worse: {worst[0].message}"
                )
        return {**report.model_dump(mode="json"), "alerts": alerts}


__all__ = ["REGISTRY", "CanaryOperator", "clear_text", "fire_text", "report_table", "run_cycle"]
