"""Which probes test which finding, and how their outcomes move the diagnosis (pure)."""

from __future__ import annotations

from airflow_faultcat.core.models import Category, Diagnosis, Evidence, FailureContext, Finding, HostSnapshot
from airflow_faultcat.core.probes import ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.catalogue import explore, plan_probes, probes_for, verdict
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
    assert [(i, s.kind) for i, s in planned] == [
        (0, "dns"),
        (1, "tcp"),
        # Every diagnosis is also tested against the rivals no log line proposes.
        ("probe.worker_disk", "disk"),
        ("probe.worker_memory", "memory"),
        ("probe.airflow_health", "airflow_health"),
    ]


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


def test_a_probe_of_this_hosts_state_counts_only_for_a_failure_on_this_host():
    from airflow_faultcat.operators.explore import apply_explored

    diagnosis = Diagnosis(
        root_cause=Category.NETWORK, confidence=0.8, confidence_reason="x", summary="s", findings=[DNS]
    )
    probes = [
        ProbeResult(
            spec=ProbeSpec(kind="dns", target="warehouse.invalid"), status="failed", call="getaddrinfo"
        ),
        ProbeResult(
            spec=ProbeSpec(kind="disk", target="/tmp"), status="ok", call="shutil.disk_usage('/tmp')"
        ),
    ]
    explored = {
        "probes": [p.model_dump(mode="json") for p in probes],
        "tests": [["network_001", 0], ["network_001", 1]],
        "host": "worker-1.example",
    }
    here = apply_explored(diagnosis, explored, "worker-1")
    elsewhere = apply_explored(diagnosis, explored, "worker-2")
    unknown = apply_explored(diagnosis, explored, None)
    disk = [e.text for e in here.findings[0].evidence if "disk_usage" in e.text]
    assert disk and disk[0].startswith("[on worker-1.example]") and "-> ok" in disk[0]
    for moved in (elsewhere, unknown):
        texts = [e.text for e in moved.findings[0].evidence if "disk_usage" in e.text]
        assert "-> could_not_run" in texts[0] and "says nothing about that host" in texts[0]
        assert "disk /tmp" in moved.diagnostics_gap
    # The network probe looks from anywhere: it counts whatever host ran it.
    assert "confirmed now by 1 probe" in elsewhere.findings[0].confidence_reason


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


def test_context_lines_are_the_lines_around_each_evidence_line(tmp_path):
    # After it too: Airflow 3 forwards what a task printed with a lag, so "Connecting to ..."
    # printed before the error often lands after the error's own record.
    from airflow_faultcat.operators.explore import context_lines

    log = tmp_path / "task.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 41)))
    finding = DNS.model_copy(update={"evidence": [Evidence(source="log", line=20, text="line 20")]})
    diagnosis = Diagnosis(
        root_cause=Category.NETWORK, confidence=0.8, confidence_reason="x", summary="s", findings=[finding]
    )
    with log.open("rb") as stream:
        lines = context_lines(stream, diagnosis)
    assert lines[0] == "line 12\n" and lines[-1] == "line 28\n" and len(lines) == 17
    with log.open("rb") as stream:
        assert context_lines(stream, diagnosis.model_copy(update={"findings": []})) == []


def test_traceback_frames_are_not_disk_targets():
    line = (
        '{"event": "Task failed", "error_detail": [{"exc_value": "[Errno 28] No space left on device", '
        '"frames": [{"filename": "/opt/airflow/dags/export.py"}, '
        '{"filename": "/usr/lib/python3.11/site-packages/airflow/sdk/bases/operator.py"}]}]}'
    )
    found = extract_targets([line, "writing the report to /data/reports/out.csv"])
    assert found.paths == ["/data/reports/out.csv"]


# ---- the probes that need the failure's own words, and the rivals --------------------------------

CONTEXT = FailureContext(
    dag_id="etl",
    run_id="manual__2026-12-04T10:00:00+00:00",
    task_id="load",
    map_index=-1,
    try_number=2,
    host=HostSnapshot(disk_free_bytes={"/opt/airflow/logs": 10**9, "/tmp": 10**9}),
)


API = "faultcat_api_default"


def _context_diagnosis(*findings: Finding) -> Diagnosis:
    return _diagnosis(*findings).model_copy(update={"context": CONTEXT})


def test_a_missing_path_a_missing_conf_key_a_timeout_and_an_http_status_get_their_probes():
    missing = _finding(
        Category.CONFIGURATION,
        "python_015",
        "A file, directory or executable the code opens or runs does not exist",
        0.9,
        ["python"],
        "FileNotFoundError: [Errno 2] No such file or directory: '/etc/app/settings.yaml'",
    )
    key = _finding(
        Category.CONFIGURATION,
        "python_007",
        "Code looked up a dictionary key that is not present",
        0.5,
        ["python"],
        "KeyError: 'batch_id'",
    )
    timeout = _finding(
        Category.TIMEOUT,
        "airflow_013",
        "The task ran longer than its execution_timeout",
        0.9,
        ["airflow"],
        "AirflowTaskTimeout: Timeout, PID: 123",
    )
    unauthorized = _finding(
        Category.CREDENTIAL,
        "http_001",
        "The server rejected the request as unauthenticated (HTTP 401)",
        0.8,
        ["http"],
        "Client error '401 Unauthorized' for url 'http://127.0.0.1:8080/api/v2/dags?limit=5'",
    )
    texts = [f.evidence[0].text for f in (missing, key, timeout, unauthorized)]
    texts.append("For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401")
    targets = extract_targets(texts)
    assert probes_for(missing, targets, CONTEXT) == [ProbeSpec(kind="path", target="/etc/app/settings.yaml")]
    assert probes_for(key, targets, CONTEXT) == [
        ProbeSpec(kind="path", target="/etc/app/settings.yaml"),
        ProbeSpec(kind="dag_run_conf", target="etl/manual__2026-12-04T10:00:00+00:00/batch_id"),
    ]
    assert probes_for(key, targets) == [ProbeSpec(kind="path", target="/etc/app/settings.yaml")]
    assert probes_for(timeout, targets, CONTEXT) == [
        ProbeSpec(kind="task_timeout", target="etl/manual__2026-12-04T10:00:00+00:00/load/-1/2")
    ]
    # The status is asked again (query dropped); no TCP probe; the documentation link is no target.
    assert probes_for(unauthorized, targets, CONTEXT) == [
        ProbeSpec(kind="http", target="http://127.0.0.1:8080/api/v2/dags")
    ]
    assert "developer.mozilla.org" not in targets.hosts


def test_a_timestamp_is_not_a_host_and_port():
    targets = extract_targets(["2026-12-04T19:07:04.123+00:00 [info] connecting to 127.0.0.1:5432"])
    assert targets.endpoints == [("127.0.0.1", 5432)]


def test_rivals_are_ruled_out_when_healthy_and_become_findings_when_seen():
    diagnosis = _context_diagnosis(REFUSED)
    planned = plan_probes(diagnosis, extract_targets([REFUSED.evidence[0].text]))
    rival_specs = [(s, spec) for s, spec in planned if isinstance(s, str)]
    assert [spec.target for s, spec in rival_specs if s == "probe.worker_disk"] == [
        "/opt/airflow/logs",
        "/tmp",
    ]
    healthy = explore(
        diagnosis,
        [
            (0, _result("tcp", "warehouse.invalid:5432", "failed", "refused")),
            ("probe.worker_disk", _result("disk", "/opt/airflow/logs", "ok", "9 GiB free")),
            ("probe.worker_disk", _result("disk", "/tmp", "ok", "9 GiB free")),
            ("probe.worker_memory", _result("memory", "worker", "ok", "20 GiB available")),
            (
                "probe.airflow_health",
                _result("airflow_health", "faultcat_api_default", "could_not_run", "no"),
            ),
        ],
    )
    top = healthy.findings[0]
    assert top.pattern_id == "network_003" and "confirmed now" in top.confidence_reason
    ruled = {r.pattern_id: r for r in top.alternatives_ruled_out}
    assert set(ruled) == {"probe.worker_disk", "probe.worker_memory"}
    assert ruled["probe.worker_memory"].category == Category.RESOURCE_EXHAUSTION
    assert ruled["probe.worker_disk"].reason.startswith("ruled out by probe: disk('/opt/airflow/logs') -> ok")
    assert f"airflow_health {API}: no" in healthy.diagnostics_gap
    # One folder full of the two: the rival is seen, and becomes a finding with that probe's evidence.
    seen = explore(
        diagnosis,
        [
            (0, _result("tcp", "warehouse.invalid:5432", "failed", "refused")),
            ("probe.worker_disk", _result("disk", "/opt/airflow/logs", "failed", "0 MiB free")),
            ("probe.worker_disk", _result("disk", "/tmp", "ok", "9 GiB free")),
        ],
    )
    assert [f.pattern_id for f in seen.findings] == ["network_003", "probe.worker_disk"]
    rival = seen.findings[1]
    assert rival.category == Category.STORAGE and rival.confidence == 0.45
    assert [e.text for e in rival.evidence] == ["disk('/opt/airflow/logs') -> failed (0 ms): 0 MiB free"]
    assert not seen.findings[0].alternatives_ruled_out
    # An unknown rival id is ignored, never an error.
    assert (
        explore(diagnosis, [("probe.nope", _result("memory", "worker", "ok"))]).findings == diagnosis.findings
    )


def test_an_http_status_is_read_against_the_claim():
    unauthorized = _finding(Category.CREDENTIAL, "http_001", "HTTP 401", 0.8, ["http"])
    server_error = _finding(Category.SERVICE_DEPENDENCY, "http_025", "HTTP status error", 0.6, ["http"])

    def http(status: int) -> ProbeResult:
        result = _result("http", "http://127.0.0.1:8080/api/v2/dags", "failed" if status >= 400 else "ok")
        return result.model_copy(update={"observed": {"status": status}, "output": f"HTTP {status}"})

    assert verdict(http(401), unauthorized) == "confirms"
    assert verdict(http(200), unauthorized) == "contradicts"
    assert verdict(http(404), unauthorized) == "gap"
    assert verdict(http(401), server_error) == "contradicts"  # the service is up and answering
    assert verdict(http(503), server_error) == "confirms"
    explored = explore(_diagnosis(unauthorized, server_error), [(0, http(401)), (1, http(401))])
    top = explored.findings[0]
    assert top.pattern_id == "http_001" and "confirmed now" in top.confidence_reason
    assert [r.pattern_id for r in top.alternatives_ruled_out] == ["http_025"]
    assert "-> failed: HTTP 401" in top.alternatives_ruled_out[0].reason
