from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def faultcat(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow_faultcat.cli", *args], input=stdin, capture_output=True, timeout=120
    )


def assert_clean_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith("faultcat: error: ")
    assert fragment in err
    assert "Traceback" not in err


def test_diagnose_json_has_the_documented_shape():
    result = faultcat("diagnose", "--json", str(EXAMPLES / "airflow3_postgres_auth.log"))
    assert result.returncode == 0, result.stderr.decode()
    diagnosis = json.loads(result.stdout)
    assert diagnosis["root_cause"] == "CREDENTIAL"
    assert 0 <= diagnosis["confidence"] <= 1
    finding = diagnosis["findings"][0]
    assert {"category", "pattern_id", "confidence", "evidence"} <= finding.keys()
    assert finding["evidence"][0]["line"] == 10
    assert "password authentication failed" in finding["evidence"][0]["text"]


def test_diagnose_table_reads_stdin():
    log = (EXAMPLES / "disk_full.log").read_bytes()
    result = faultcat("diagnose", stdin=log)
    out = result.stdout.decode()
    assert result.returncode == 0
    assert out.startswith("Root cause: STORAGE")
    assert "line 3" in out


def test_diagnose_with_context_file(tmp_path):
    context = tmp_path / "ctx.json"
    context.write_text(
        json.dumps(
            {
                "dag_id": "d",
                "task_id": "t",
                "exception_type": "OSError",
                "exception_message": "[Errno 28] No space left on device",
            }
        )
    )
    result = faultcat("diagnose", "--json", "--context", str(context), "-", stdin=b"")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["root_cause"] == "STORAGE"


def test_diagnose_output_scrubs_the_context_it_echoes(tmp_path):
    token = "ghp_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    context = tmp_path / "ctx.json"
    context.write_text(
        json.dumps(
            {
                "dag_id": "d",
                "task_id": "t",
                "exception_type": "OSError",
                "exception_message": f"[Errno 28] No space left on device; password=Fake-Pw-123 {token}",
                "traceback": f"Traceback (most recent call last):\nOSError: token={token}\n",
                "extra": {"api_key": "Fake-Key-456", "team": "data"},
            }
        )
    )
    for args in (["--json"], []):
        result = faultcat("diagnose", *args, "--context", str(context), "-", stdin=b"")
        assert result.returncode == 0, result.stderr.decode()
        out = result.stdout.decode()
        for secret in (token, "Fake-Pw-123", "Fake-Key-456"):
            assert secret not in out
    echoed = json.loads(faultcat("diagnose", "--json", "--context", str(context), "-", stdin=b"").stdout)
    assert echoed["context"]["exception_message"] == "[Errno 28] No space left on device; password=*** ***"
    assert echoed["context"]["extra"] == {"api_key": "***", "team": "data"}


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p / "missing.log", "no such file"),
        (lambda p: (p / "empty.log").write_bytes(b"") and p / "empty.log" or p / "empty.log", "is empty"),
        (lambda p: (p / "bin.log").write_bytes(b"\x7fELF\x00\x01\x02" * 100) and p / "bin.log", "binary"),
        (lambda p: p, "is a folder"),
    ],
    ids=["missing", "empty", "binary", "folder"],
)
def test_diagnose_bad_input_is_a_clear_error(tmp_path, make, fragment):
    assert_clean_error(faultcat("diagnose", str(make(tmp_path))), fragment)


def test_diagnose_refuses_what_is_not_a_regular_file(tmp_path):
    import os

    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    assert_clean_error(faultcat("diagnose", str(fifo)), "not a regular file")
    result = faultcat("diagnose", "--context", "/dev/zero", "-", stdin=b"x\n")
    assert_clean_error(result, "not a regular file")


def test_diagnose_refuses_a_huge_context_file(tmp_path):
    context = tmp_path / "ctx.json"
    with context.open("wb") as out:
        out.truncate(17 << 20)
    assert_clean_error(faultcat("diagnose", "--context", str(context), "-", stdin=b"x\n"), "at most")


def test_a_log_after_copytruncate_nul_bytes_is_still_read(tmp_path):
    log = tmp_path / "rotated.log"
    log.write_bytes(b"\0" * 20_000 + b"ERROR - OSError: [Errno 28] No space left on device: '/data'\n")
    result = faultcat("diagnose", "--json", str(log))
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["root_cause"] == "STORAGE"


def test_diagnose_unreadable_file(tmp_path):
    import os

    log = tmp_path / "secret.log"
    log.write_text("x\n")
    log.chmod(0)
    if os.access(log, os.R_OK):  # root reads anything: use a path that cannot be opened instead
        log = tmp_path / "dir.log" / "x"
        (tmp_path / "dir.log").write_text("not a folder")
        assert_clean_error(faultcat("diagnose", str(log)), "cannot read")
    else:
        assert_clean_error(faultcat("diagnose", str(log)), "cannot read")


def test_diagnose_bad_context_file(tmp_path):
    context = tmp_path / "ctx.json"
    context.write_text('{"try_number": "many"}')
    assert_clean_error(
        faultcat("diagnose", "--context", str(context), str(EXAMPLES / "disk_full.log")),
        "not a FailureContext: try_number",
    )


def test_diagnose_broken_user_patterns(data_dir):
    result = faultcat(
        "diagnose", "--patterns", str(data_dir / "patterns" / "broken.yaml"), str(EXAMPLES / "disk_full.log")
    )
    assert_clean_error(result, "broken_001")


def test_patterns_validate_ok_and_broken(data_dir):
    ok = faultcat("patterns", "validate")
    assert ok.returncode == 0, ok.stderr.decode()
    assert ok.stdout.decode().startswith("ok: ")
    broken = faultcat("patterns", "validate", str(data_dir / "patterns" / "broken.yaml"))
    assert broken.returncode == 1
    err = broken.stderr.decode()
    assert "broken.yaml: broken_001: RE2 rejects regex" in err
    assert "broken.yaml: broken_003: example does not match: 'accepted'" in err


def test_patterns_list_filters_by_category():
    result = faultcat("patterns", "list", "--json", "--category", "storage")
    rows = json.loads(result.stdout)
    assert rows and {r["category"] for r in rows} == {"STORAGE"}
    assert "examples" not in rows[0]


def test_schema_prints_json_schema_and_rejects_unknown():
    result = faultcat("schema", "diagnosis")
    assert json.loads(result.stdout)["title"] == "Diagnosis"
    names = faultcat("schema").stdout.decode().split()
    assert "evidence-bundle" in names
    assert_clean_error(faultcat("schema", "nope"), "unknown schema")


def test_scrub_from_file_and_stdin():
    result = faultcat("scrub", str(EXAMPLES / "leaky_connection.log"))
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "S3cr3t-Pa55" not in out
    assert "postgresql://report:***@reporting-db:5432/reports" in out
    piped = faultcat("scrub", "--secret", "topsecretvalue", "-", stdin=b"token is topsecretvalue ok\n")
    assert piped.stdout == b"token is *** ok\n"


@pytest.mark.parametrize(
    ("error", "fragment"), [(RecursionError, "nested too deeply"), (MemoryError, "out of memory")]
)
def test_recursion_and_memory_errors_are_one_line(monkeypatch, capsys, error, fragment):
    from airflow_faultcat import cli

    def explode(args):
        raise error()

    monkeypatch.setattr(cli, "_cmd_diagnose", explode)
    assert cli.main(["diagnose", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faultcat: error: ") and fragment in err and "Traceback" not in err
