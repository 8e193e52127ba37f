"""The example DAGs under ``dags/``: they parse, document themselves, and fail for their real reason.

Every example runs with ``dag.test()`` (in-process task runner, no scheduler, no API server) against
a throw-away ``AIRFLOW_HOME`` with its own migrated SQLite database. Airflow reads its
configuration when it is first imported, so the DAGs run in one child process started with that
environment; it writes what it saw (run state, task instance states and tries) to a JSON file. No
API server runs, so ``RecoveryDagNotifier`` (and the listener) spool each failure to
``$AIRFLOW_HOME/faultcat/spool/*.json``, and the tests read the FailureContext from there.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
EXAMPLE_FILES = sorted(DAGS.glob("example_*.py"))
EXAMPLE_IDS = [path.stem for path in EXAMPLE_FILES]

CATEGORIES = {
    "VIRTUALIZATION",
    "NETWORK",
    "STORAGE",
    "SERVICE_DEPENDENCY",
    "CREDENTIAL",
    "RESOURCE_EXHAUSTION",
    "CONFIGURATION",
    "TIMEOUT",
    "STATE_MISMATCH",
}

SECRET = "hunter2-example-secret-0451"

#: dag_id -> (task_id, expected DagRun state, exception type in the spooled FailureContext).
EXPECTED_RUNS: dict[str, tuple[str, str, str]] = {
    "example_disk_full": ("write_report", "failed", "OSError"),
    "example_connection_refused": ("query_warehouse", "failed", "ConnectionRefusedError"),
    "example_dns_failure": ("resolve_warehouse", "failed", "socket.gaierror"),
    "example_libvirt_unreachable": ("list_build_vms", "failed", "libvirt.libvirtError"),
    "example_execution_timeout": (
        "slow_export",
        "failed",
        "airflow.sdk.exceptions.AirflowTaskTimeout",
    ),
    "example_missing_config": ("load_settings", "failed", "FileNotFoundError"),
    "example_memory_error": ("build_feature_matrix", "failed", "MemoryError"),
    "example_http_unauthorized": ("list_dags", "failed", "httpx.HTTPStatusError"),
    "example_bad_conf": ("load_batch", "failed", "KeyError"),
    # Without a faultcat_recovery DAG to retry it (dag.test), its one try fails.
    "example_flaky_retry": ("ping_warehouse", "failed", "ConnectionRefusedError"),
    "example_listener": ("list_inbox", "failed", "subprocess.CalledProcessError"),
    "example_leaky_secrets": ("sync_warehouse", "failed", "ConnectionRefusedError"),
    "example_hostile_log": ("load_events", "failed", "ConnectionRefusedError"),
}

#: Run in the child process: argv = [results.json, dag_id, ...].
RUNNER = r"""
import json, os, sys, time, traceback

from airflow.dag_processing.dagbag import DagBag

results_path, dag_ids = sys.argv[1], sys.argv[2:]
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
results = {"import_errors": {str(k): v for k, v in bag.import_errors.items()}, "runs": {}}
run_conf = {"example_bad_conf": {"region": "eu-west-1"}}
for dag_id in dag_ids:
    started = time.monotonic()
    listener = dag_id == "example_listener"
    if listener:  # the fleet-wide listener, only for the DAG without a callback
        os.environ["AIRFLOW__FAULTCAT__LISTENER_ENABLED"] = "True"
    try:
        dr = bag.get_dag(dag_id).test(run_conf=run_conf.get(dag_id))
        tis = {
            ti.task_id: {"state": str(getattr(ti.state, "value", ti.state)), "try_number": ti.try_number}
            for ti in dr.get_task_instances()
        }
        state = str(getattr(dr.state, "value", dr.state))
        results["runs"][dag_id] = {"state": state, "tis": tis, "seconds": time.monotonic() - started}
    except BaseException:
        results["runs"][dag_id] = {"error": traceback.format_exc()}
    finally:
        os.environ.pop("AIRFLOW__FAULTCAT__LISTENER_ENABLED", None)
    with open(results_path, "w") as fh:
        json.dump(results, fh, indent=1)
"""


def _example_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__FAULTCAT__LISTENER_ENABLED": "False",
            "FAULTCAT_EXAMPLE_SECRET": SECRET,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class _RejectingApi(BaseHTTPRequestHandler):
    """Stands for the API server that ``example_http_unauthorized`` calls with a stale token (no
    API server runs under ``dag.test()``): 403 "Invalid JWT token", as Airflow 3.3 answers."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        body = b'{"detail": "Invalid JWT token"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        pass  # the test reads the task's log, not this server's


@pytest.fixture(scope="module")
def rejecting_api():
    """The base URL of a loopback server that answers every GET with 403."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RejectingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory, rejecting_api: str) -> dict:
    """Run every example DAG once with ``dag.test()``; their results, spool and output."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**_example_env(home), "AIRFLOW__API__BASE_URL": rejecting_api}
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    results_path = home / "results.json"
    log_path = home / "dag-test.log"
    with log_path.open("w") as log:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, str(results_path), *EXPECTED_RUNS],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    output = log_path.read_text(errors="replace")
    assert results_path.exists(), f"runner exited with {proc.returncode}:\n{output[-5000:]}"
    results = json.loads(results_path.read_text())

    spool = {}
    for path in sorted((home / "faultcat" / "spool").glob("*.json")):
        entry = json.loads(path.read_text())
        conf = entry["conf"]
        spool.setdefault(conf["dag_id"], []).append(entry)
    return {"results": results, "spool": spool, "output": output, "home": home}


# -- parsing --------------------------------------------------------------------------------------


def test_there_are_examples():
    assert set(EXAMPLE_IDS) == set(EXPECTED_RUNS)


#: Run in a child process: parse the DAG folder, print what the tests check as JSON.
PARSER = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dags = {
    dag_id: {
        "fileloc": dag.fileloc,
        "doc_md": dag.doc_md,
        "tags": sorted(dag.tags),
        "schedule": repr(dag.schedule),
        "catchup": dag.catchup,
        "tasks": [t.task_id for t in dag.tasks],
    }
    for dag_id, dag in bag.dags.items()
}
print(json.dumps({"import_errors": {str(k): v for k, v in bag.import_errors.items()}, "dags": dags}))
"""


@pytest.fixture(scope="module")
def parsed_dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The DagBag of ``dags/``, loaded in a child process with a throw-away ``AIRFLOW_HOME``."""
    home = tmp_path_factory.mktemp("airflow-home-parse")
    proc = subprocess.run(
        [sys.executable, "-c", PARSER], env=_example_env(home), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dagbag_has_no_import_errors(parsed_dagbag: dict):
    assert parsed_dagbag["import_errors"] == {}


@pytest.mark.parametrize("dag_id", EXAMPLE_IDS)
def test_example_defines_a_documented_dag(parsed_dagbag: dict, dag_id: str):
    dag = parsed_dagbag["dags"].get(dag_id)
    assert dag is not None, f"{dag_id}.py defines no DAG {dag_id!r}"
    assert Path(dag["fileloc"]).stem == dag_id
    assert dag["doc_md"] and "Expected root cause" in dag["doc_md"]
    # faultcat:* tags set a per-Dag policy (the leaky example escalates at once).
    assert [t for t in dag["tags"] if not t.startswith("faultcat:")] == ["example", "faultcat"]
    assert dag["schedule"] == "None" and dag["catchup"] is False
    assert dag["tasks"] == [EXPECTED_RUNS[dag_id][0]]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=EXAMPLE_IDS)
def test_example_module_declares_its_root_cause(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and "Prerequisites" in docstring and "Expected root cause" in docstring
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    expected = constants.get("EXPECTED_ROOT_CAUSE")
    assert expected in CATEGORIES
    assert f"``{expected}``" in docstring


def test_no_airflow2_imports():
    for path in EXAMPLE_FILES:
        text = path.read_text(encoding="utf-8")
        assert "airflow.models" not in text and "airflow.operators" not in text, path.name


# -- running --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", list(EXPECTED_RUNS))
def test_example_fails_for_its_real_reason(example_runs: dict, dag_id: str):
    task_id, dag_state, exception_type = EXPECTED_RUNS[dag_id]
    assert example_runs["results"]["import_errors"] == {}
    run = example_runs["results"]["runs"].get(dag_id)
    assert run is not None, example_runs["output"][-5000:]
    assert "error" not in run, run.get("error")
    assert run["state"] == dag_state
    ti = run["tis"][task_id]
    assert ti["state"] == dag_state

    entries = example_runs["spool"].get(dag_id, [])
    assert entries, f"nothing spooled for {dag_id}"
    first = min(entries, key=lambda e: e["conf"]["try_number"])["conf"]
    assert first["task_id"] == task_id
    assert first["try_number"] == 1
    assert first["exception_type"] == exception_type
    assert f"{exception_type.rsplit('.', 1)[-1]}" in first["traceback"]
    assert entries[0]["recovery_dag_id"] == "faultcat_recovery"


def test_flaky_retry_leaves_the_retry_to_faultcat(example_runs: dict):
    run = example_runs["results"]["runs"]["example_flaky_retry"]
    assert run["tis"]["ping_warehouse"]["try_number"] == 1
    entries = example_runs["spool"]["example_flaky_retry"]
    assert [e["conf"]["try_number"] for e in entries] == [1]
    assert entries[0]["conf"]["max_tries"] == 0
    assert "Connection refused" in entries[0]["conf"]["exception_message"]


def test_listener_captures_the_dag_without_a_callback(example_runs: dict):
    (entry,) = example_runs["spool"]["example_listener"]
    assert entry["conf"]["extra"] == {"captured_by": "listener"}
    assert "/nonexistent-faultcat" in entry["conf"]["exception_message"]
    # ls's own complaint reaches the task's output (the log a diagnosis reads).
    assert "cannot access '/nonexistent-faultcat'" in example_runs["output"]


def test_each_failure_is_spooled_once(example_runs: dict):
    for dag_id, entries in example_runs["spool"].items():
        assert len(entries) == 1, dag_id


def test_failure_messages_are_the_real_ones(example_runs: dict):
    def message(dag_id: str) -> str:
        return example_runs["spool"][dag_id][0]["conf"]["exception_message"]

    assert "No space left on device" in message("example_disk_full")
    assert "Connection refused" in message("example_connection_refused")
    assert "Failed to connect socket to" in message("example_libvirt_unreachable")
    assert "/etc/faultcat-example/warehouse.yaml" in message("example_missing_config")
    unauthorized = message("example_http_unauthorized")
    assert "Client error '403 Forbidden' for url 'http://127.0.0.1:" in unauthorized
    assert unauthorized.split("for url")[1].split("'")[1].endswith("/api/v2/dags")
    assert message("example_bad_conf") == "'batch_id'"


def test_execution_timeout_stops_the_task_early(example_runs: dict):
    run = example_runs["results"]["runs"]["example_execution_timeout"]
    assert run["seconds"] < 25  # the task sleeps 30 s; the timeout is 3 s


def test_leaky_secrets_example_leaks_into_the_log_only(example_runs: dict):
    output = example_runs["output"]
    assert f"Using token FAULTCAT_EXAMPLE_SECRET={SECRET}" in output
    assert f"Connecting to postgresql://etl:{SECRET}@127.0.0.1:1/warehouse" in output
    (entry,) = example_runs["spool"]["example_leaky_secrets"]
    assert SECRET not in json.dumps(entry)
