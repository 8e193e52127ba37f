"""``faultcat explore``: the diagnosis, then real probes run here, within the ceiling."""

from __future__ import annotations

import json
import socket

from airflow_faultcat.cli import main


def _context(tmp_path, message: str) -> str:
    path = tmp_path / "context.json"
    path.write_text(
        json.dumps(
            {
                "dag_id": "etl",
                "run_id": "manual__1",
                "task_id": "load",
                "try_number": 1,
                "exception_type": "ConnectionRefusedError",
                "exception_message": message,
            }
        )
    )
    return str(path)


def _explore(capsys, *args):
    assert main(["explore", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_closed_port_confirms_and_an_open_one_contradicts(tmp_path, capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        message = f"[Errno 111] Connection refused: could not reach the warehouse at 127.0.0.1:{port}"
        server.listen()
        opened = _explore(capsys, "--context", _context(tmp_path, message))
    closed = _explore(capsys, "--context", _context(tmp_path, message))
    assert [p["status"] for p in closed["probes"] if p["spec"]["kind"] == "tcp"] == ["failed"]
    assert [p["status"] for p in opened["probes"] if p["spec"]["kind"] == "tcp"] == ["ok"]
    top_closed = closed["diagnosis"]["findings"][0]
    top_open = opened["diagnosis"]["findings"][0]
    assert top_closed["category"] == "NETWORK" and "confirmed now" in top_closed["confidence_reason"]
    assert top_closed["confidence"] > top_open["confidence"]
    assert closed["seconds"] < 10


def test_shell_metacharacters_in_the_error_stay_data(tmp_path, capsys):
    marker = tmp_path / "pwned"
    message = f"Connection refused to 127.0.0.1:9; touch {marker} $(touch {marker}) `touch {marker}`"
    out = _explore(capsys, "--context", _context(tmp_path, message))
    assert not marker.exists()
    assert all("touch" not in p["spec"]["target"] for p in out["probes"])


def test_table_output_and_bad_input(tmp_path, capsys):
    assert main(["explore", "--context", _context(tmp_path, "Connection refused to 127.0.0.1:9")]) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("STATUS")
        and "socket.create_connection(('127.0.0.1', 9)" in out
        and "explored in" in out
    )
    assert main(["explore"]) == 2
    assert "give --context FILE, --log FILE, or both" in capsys.readouterr().err
