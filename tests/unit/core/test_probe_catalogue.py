"""Which probes test which finding, and how their outcomes move the diagnosis (pure)."""

from __future__ import annotations

from airflow_faultcat.core.models import Category, Diagnosis, Evidence, Finding
from airflow_faultcat.core.probes import ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.catalogue import explore, plan_probes, probes_for
from airflow_faultcat.core.probes.targets import extract_targets


def _finding(
    category: Category, pattern_id: str, title: str, confidence: float, services=(), text=""
) -> Finding:
    return Finding(
        category=category,
        pattern_id=pattern_id,
        title=title,
        severity="high",
        confidence=confidence,
        confidence_reason="pattern matched",
        score=confidence,
        evidence=[Evidence(source="log", line=3, text=text)] if text else [],
        services_affected=list(services),
    )


DNS = _finding(
    Category.NETWORK,
    "network_001",
    "A host name could not be resolved (DNS)",
    0.8,
    ["dns"],
    "socket.gaierror: [Errno -2] Name or service not known: 'warehouse.invalid'",
)
REFUSED = _finding(
    Category.NETWORK,
    "network_003",
    "A connection was refused",
    0.5,
    ["tcp"],
    "ConnectionRefusedError: [Errno 111] Connection refused to warehouse.invalid:5432",
)
DISK = _finding(
    Category.STORAGE,
    "filesystem_001",
    "No space left on device",
    0.7,
    ["disk"],
    "OSError: [Errno 28] No space left on device: '/data/out/part-1.csv'",
)
LIBVIRT = _finding(
    Category.VIRTUALIZATION,
    "libvirt_001",
    "The libvirt daemon socket could not be reached",
    0.7,
    ["libvirt"],
    "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
)


def _diagnosis(*findings: Finding) -> Diagnosis:
    return Diagnosis(
        root_cause=findings[0].category,
        confidence=findings[0].confidence,
        confidence_reason="x",
        summary="y",
        findings=list(findings),
    )


def _result(kind: str, target: str, status: str, output: str = "") -> ProbeResult:
    return ProbeResult(
        spec=ProbeSpec(kind=kind, target=target), status=status, call=f"{kind}({target!r})", output=output
    )


def test_each_finding_gets_the_probes_that_test_its_claim():
    targets = extract_targets([f.evidence[0].text for f in (DNS, REFUSED, DISK, LIBVIRT)])
    assert probes_for(DNS, targets) == [ProbeSpec(kind="dns", target="warehouse.invalid")]
    assert probes_for(REFUSED, targets) == [ProbeSpec(kind="tcp", target="warehouse.invalid:5432")]
    assert probes_for(DISK, targets) == [ProbeSpec(kind="disk", target="/data/out/part-1.csv")]
    assert probes_for(LIBVIRT, targets) == [
        ProbeSpec(kind="unix_socket", target="/var/run/libvirt/libvirt-sock"),
        ProbeSpec(kind="process", target="libvirtd"),
    ]
    planned = plan_probes(_diagnosis(DNS, REFUSED), targets)
    assert [(i, s.kind) for i, s in planned] == [(0, "dns"), (1, "tcp")]


def test_confirmed_finding_gains_and_a_contradicted_alternative_is_ruled_out():
    diagnosis = _diagnosis(DNS, REFUSED)
    explored = explore(
        diagnosis,
        [
            (0, _result("dns", "warehouse.invalid", "failed", "Name or service not known")),
            (1, _result("tcp", "warehouse.invalid:5432", "ok", "connected")),
        ],
    )
    top, other = explored.findings
    assert top.pattern_id == "network_001" and top.confidence == 0.9 > DNS.confidence
    assert other.confidence == 0.2
    (ruled,) = top.alternatives_ruled_out
    assert ruled.pattern_id == "network_003" and ruled.reason.startswith("ruled out by probe: tcp(")
    assert top.evidence[-1].source == "probe" and "-> failed" in top.evidence[-1].text
    assert explored.confidence == 0.9 and explored.root_cause == Category.NETWORK
    assert diagnosis.findings[0].confidence == 0.8  # the input is not changed


def test_a_contradicted_top_finding_gives_way_to_an_uncontradicted_one():
    explored = explore(
        _diagnosis(DISK, REFUSED), [(0, _result("disk", "/data/out/part-1.csv", "ok", "90% free"))]
    )
    assert [f.pattern_id for f in explored.findings] == ["network_003", "filesystem_001"]
    assert explored.root_cause == Category.NETWORK
    assert explored.findings[0].alternatives_ruled_out[-1].pattern_id == "filesystem_001"


def test_a_probe_that_could_not_run_is_a_gap_never_a_verdict():
    explored = explore(
        _diagnosis(LIBVIRT),
        [(0, _result("process", "libvirtd", "could_not_run", "no /proc on this host"))],
        ceiling_note="the 10 s ceiling stopped some probes",
    )
    assert explored.findings[0].confidence == LIBVIRT.confidence
    assert "process libvirtd: no /proc on this host" in explored.diagnostics_gap
    assert "ceiling" in explored.diagnostics_gap


def test_a_connection_the_task_used_is_probed_through_its_hook():
    refused = _finding(
        Category.SERVICE_DEPENDENCY,
        "postgres_001",
        "The PostgreSQL server refused the connection",
        0.8,
        ["postgres"],
        "INFO - Using connection ID 'warehouse_pg' for task execution.",
    )
    targets = extract_targets([refused.evidence[0].text])
    assert probes_for(refused, targets) == [ProbeSpec(kind="connection", target="warehouse_pg")]
    # A disk-space finding does not probe connections.
    assert probes_for(DISK, targets) == []


def test_container_pool_and_airflow_health_probes_are_picked_by_the_claim():
    container = _finding(
        Category.SERVICE_DEPENDENCY,
        "container_001",
        "A container the task needs is not running",
        0.6,
        ["docker"],
        "docker.errors.APIError: 409 Conflict: container etl-db is not running",
    )
    pool = _finding(
        Category.RESOURCE_EXHAUSTION,
        "airflow_pool_001",
        "No open slots in the task's pool",
        0.6,
        [],
        "Not scheduling since there are 0 open slots in pool etl_pool",
    )
    zombie = _finding(
        Category.TIMEOUT, "airflow_zombie_001", "The task's heartbeat stopped (zombie)", 0.6, [], "zombie"
    )
    targets = extract_targets([e.text for f in (container, pool) for e in f.evidence])
    assert ProbeSpec(kind="container", target="etl-db") in probes_for(container, targets)
    assert probes_for(pool, targets) == [ProbeSpec(kind="pool", target="etl_pool")]
    assert ProbeSpec(kind="airflow_health", target="faultcat_api_default") in probes_for(zombie, targets)
    assert not any(s.kind == "container" for s in probes_for(DISK, targets))


def test_explore_step_results_move_the_diagnosis_by_pattern_id():
    from airflow_faultcat.operators.explore import apply_explored

    diagnosis = Diagnosis(
        root_cause=Category.NETWORK,
        confidence=0.8,
        confidence_reason="x",
        summary="dns",
        findings=[DNS, REFUSED],
    )
    probes = [
        ProbeResult(
            spec=ProbeSpec(kind="dns", target="warehouse.invalid"), status="failed", call="getaddrinfo"
        ),
        ProbeResult(spec=ProbeSpec(kind="tcp", target="warehouse.invalid:5432"), status="ok", call="connect"),
    ]
    explored = {
        "probes": [p.model_dump(mode="json") for p in probes],
        "tests": [["network_001", 0], ["network_003", 1], ["not_in_this_library", 0]],
        "ceiling_note": None,
    }
    moved = apply_explored(diagnosis, explored)
    assert moved.findings[0].pattern_id == "network_001" and moved.findings[0].confidence > 0.8
    assert [r.pattern_id for r in moved.findings[0].alternatives_ruled_out] == ["network_003"]
    failed = apply_explored(diagnosis, {"error": "TimeoutError: worker lost"})
    assert failed.findings == diagnosis.findings and "probes did not run" in failed.diagnostics_gap


def test_targets_in_what_a_task_says_before_it_fails():
    found = extract_targets(
        [
            '{"event": "Resolving warehouse-db.faultcat.invalid", "logger": "task.stdout"}',
            "connecting to the warehouse at 127.0.0.1:4711",
            "resolving version 1.2 of the schema",
        ]
    )
    assert found.hosts == ["warehouse-db.faultcat.invalid", "127.0.0.1"]
    assert found.endpoints == [("127.0.0.1", 4711)]


def test_context_lines_are_the_lines_before_each_evidence_line(tmp_path):
    from airflow_faultcat.operators.explore import context_lines

    log = tmp_path / "task.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 41)))
    finding = DNS.model_copy(update={"evidence": [Evidence(source="log", line=20, text="line 20")]})
    diagnosis = Diagnosis(
        root_cause=Category.NETWORK, confidence=0.8, confidence_reason="x", summary="s", findings=[finding]
    )
    lines = context_lines(str(log), diagnosis)
    assert lines[0] == "line 12\n" and lines[-1] == "line 22\n" and len(lines) == 11
    assert context_lines(str(tmp_path / "missing.log"), diagnosis) == []


def test_traceback_frames_are_not_disk_targets():
    line = (
        '{"event": "Task failed", "error_detail": [{"exc_value": "[Errno 28] No space left on device", '
        '"frames": [{"filename": "/opt/airflow/dags/export.py"}, '
        '{"filename": "/usr/lib/python3.11/site-packages/airflow/sdk/bases/operator.py"}]}]}'
    )
    found = extract_targets([line, "writing the report to /data/reports/out.csv"])
    assert found.paths == ["/data/reports/out.csv"]
