"""The optional LLM explorer against a local OpenAI-compatible stand-in and real loopback probes.

The stand-in (``tests/standins/openai_api.py``) replays recorded transcripts
(``tests/data/llm/*.json``); the probes are the real ones, on loopback only: a TCP connection to a
port the test holds open and to one it closed, a DNS lookup of an ``.invalid`` name.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_faultcat.core.llm import PROBE_TOOL, LlmSettings, answer_schema, judge_answer, number_evidence
from airflow_faultcat.core.models import Category, Diagnosis, Evidence, FailureContext, Finding, RuledOut
from airflow_faultcat.hooks.llm import LlmExplorer, LlmOutcome, explorer_from_conf
from airflow_faultcat.hooks.probes import run_probe
from tests.standins.openai_api import OpenAiApiStandin, Transcript

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "llm"
API_KEY = "sk-standin-0123456789abcdefFAULTCAT"
MODEL = "faultcat-test-model"
PASSWORD = "hunter2-s3cret"
AWS_KEY = "AKIAZ3XQ7PLMN4RSTUVW"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = (PASSWORD, AWS_KEY, AWS_SECRET, API_KEY)


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    """A loopback port that accepts connections (held open) and one that refuses them."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield {"open_port": server.getsockname()[1], "closed_port": closed_port}


@pytest.fixture
def diagnosis(ports) -> Diagnosis:
    """Redis timed out (ranked first) and PostgreSQL refused (second); secrets planted throughout."""
    refused = (
        f'psycopg2.OperationalError: connection to server at "127.0.0.1", port {ports["closed_port"]} '
        f"failed: Connection refused (dsn: host=127.0.0.1 user=etl password={PASSWORD})"
    )
    redis_at = f"127.0.0.1:{ports['open_port']}"
    redis = Finding(
        category=Category.NETWORK,
        pattern_id="redis_002",
        title="The Redis host could not be resolved or reached in time",
        severity="high",
        confidence=0.6,
        confidence_reason="pattern matched near the failure",
        score=0.6,
        evidence=[
            Evidence(
                line=40,
                text=f"redis.exceptions.TimeoutError: Timeout connecting to server {redis_at}",
                pattern_id="redis_002",
            )
        ],
        services_affected=["redis"],
        alternatives_ruled_out=[
            RuledOut(
                category=Category.SERVICE_DEPENDENCY,
                pattern_id="postgres_001",
                score=0.45,
                reason="ranked lower",
            )
        ],
    )
    postgres = Finding(
        category=Category.SERVICE_DEPENDENCY,
        pattern_id="postgres_001",
        title="PostgreSQL refused the connection",
        severity="high",
        confidence=0.45,
        confidence_reason="pattern matched",
        score=0.45,
        evidence=[
            Evidence(line=52, text=refused, pattern_id="postgres_001"),
            Evidence(line=53, text=f"botocore: using aws_access_key_id={AWS_KEY} secret={AWS_SECRET}"),
        ],
        services_affected=["postgres"],
    )
    context = FailureContext(
        dag_id="etl_daily",
        run_id="scheduled__2025-01-01T00:00:00+00:00",
        task_id="load_orders",
        try_number=2,
        exception_type="psycopg2.OperationalError",
        exception_message=refused,
        traceback="Traceback (most recent call last):\n"
        + "".join(f'  File "/opt/etl/step{i}.py", line {i}, in run\n' for i in range(60))
        + f"  export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n{refused}\n",
        hostname="worker-1",
    )
    return Diagnosis(
        root_cause=Category.NETWORK,
        confidence=0.6,
        confidence_reason="best pattern score",
        summary="Redis timed out",
        findings=[redis, postgres],
        context=context,
    )


def _standin(name: str, ports: dict[str, int], **kwargs) -> OpenAiApiStandin:
    variables = {**ports, **kwargs.pop("variables", {})}
    return OpenAiApiStandin(
        TRANSCRIPTS / f"{name}.json",
        api_key=kwargs.pop("api_key", API_KEY),
        model=MODEL,
        variables=variables,
        **kwargs,
    )


def _explore(
    standin: OpenAiApiStandin, diagnosis: Diagnosis, *, api_key: str = API_KEY, **settings
) -> LlmOutcome:
    explorer = LlmExplorer(
        LlmSettings(model=MODEL, **{"timeout_seconds": 10.0, **settings}),
        base_url=standin.api_url,
        api_key=api_key,
    )
    try:
        return explorer.explore(diagnosis)
    finally:
        explorer.close()


def _tool_messages(body: dict) -> list[dict]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


# ---- (a) a good exploration is accepted --------------------------------------------------------


def test_good_transcript_is_accepted_and_moves_the_diagnosis(diagnosis, ports):
    before = diagnosis.model_copy(deep=True)
    with _standin("good", ports) as standin:
        outcome = _explore(standin, diagnosis)
    assert outcome.accepted, outcome.problems
    assert outcome.problems == [] and outcome.steps == 2
    assert [(p.spec.target, p.status) for p in outcome.probes] == [
        (f"127.0.0.1:{ports['closed_port']}", "failed"),
        (f"127.0.0.1:{ports['open_port']}", "ok"),
    ]
    new = outcome.diagnosis
    assert new.root_cause == Category.SERVICE_DEPENDENCY and new.confidence == 0.9
    assert [f.pattern_id for f in new.findings] == ["postgres_001", "redis_002"]
    assert [f.confidence for f in new.findings] == [0.9, 0.1]
    assert new.confidence_reason == f"LLM explorer (model {MODEL}) after 2 probes"
    top = new.findings[0]
    probe_lines = [e.text for e in top.evidence if e.source == "probe"]
    assert (
        len(probe_lines) == 1
        and "-> failed" in probe_lines[0]
        and str(ports["closed_port"]) in probe_lines[0]
    )
    assert [r.pattern_id for r in top.alternatives_ruled_out] == ["redis_002"]
    assert "[E5]" in top.alternatives_ruled_out[0].reason and "-> ok" in top.alternatives_ruled_out[0].reason
    assert "[E4]" in top.confidence_reason
    assert new.summary.startswith("PostgreSQL on 127.0.0.1 refuses")
    assert diagnosis == before, "the input diagnosis is not changed"

    first, second = standin.completions
    assert first["model"] == MODEL and first["tools"] == [PROBE_TOOL] and first["tool_choice"] == "auto"
    assert json.dumps(answer_schema(), separators=(",", ":")) in first["messages"][0]["content"]
    assert "E2 [log line 52]" in first["messages"][1]["content"]
    assert [(t["evidence_id"], t["status"]) for t in _tool_messages(second)] == [
        ("E4", "failed"),
        ("E5", "ok"),
    ]
    assert standin.rejected == []


# ---- (b) an answer without probing is rejected -------------------------------------------------


def test_answer_without_probing_is_rejected(diagnosis, ports):
    with _standin("no_probe", ports) as standin:
        outcome = _explore(standin, diagnosis)
    assert not outcome.accepted and outcome.steps == 1 and outcome.probes == []
    assert outcome.diagnosis == diagnosis
    assert any("answered without probing" in p for p in outcome.problems), outcome.problems


# ---- (c) the ceilings --------------------------------------------------------------------------


def test_looping_model_hits_the_step_ceiling(diagnosis, ports):
    with _standin("loop", ports) as standin:
        outcome = _explore(standin, diagnosis, max_steps=3)
    assert not outcome.accepted and outcome.diagnosis == diagnosis
    assert outcome.problems == ["step ceiling reached (3 model calls)"]
    assert outcome.steps == 3 and len(standin.completions) == 3
    assert [(p.spec.kind, p.status) for p in outcome.probes] == [("dns", "failed")] * 3
    # Each probe's result came back to the model with the next evidence id.
    assert [t["evidence_id"] for t in _tool_messages(standin.completions[-1])] == ["E4", "E5"]


def test_slow_looping_model_hits_the_time_ceiling(diagnosis, ports):
    with _standin("loop", ports, delay_seconds=0.4) as standin:
        outcome = _explore(standin, diagnosis, max_steps=50, timeout_seconds=1.0)
    assert not outcome.accepted and outcome.diagnosis == diagnosis
    assert len(outcome.problems) == 1 and outcome.problems[0].startswith("time ceiling reached (1 s)")
    assert 2 <= outcome.steps < 50 and outcome.seconds < 2.5


# ---- (d) nothing unscrubbed is sent ------------------------------------------------------------


def test_planted_secrets_never_reach_the_model(diagnosis, ports):
    with _standin("good", ports) as standin:
        outcome = _explore(standin, diagnosis)
    assert outcome.accepted
    sent = json.dumps([r.body for r in standin.requests])
    assert len(standin.requests) == 2
    for secret in SECRETS:
        assert secret not in sent
    assert "hunter2" not in sent and "AKIAZ3XQ" not in sent
    # Not vacuous: the scrubbed lines were sent, with the secrets masked.
    user = standin.requests[0].body["messages"][1]["content"]
    assert "password=***" in user and f"port {ports['closed_port']} failed: Connection refused" in user
    assert "load_orders" in user and "step59.py" in user and "step0.py" not in user, (
        "only the traceback's tail"
    )
    # What the explorer wrote into the diagnosis is scrubbed too (the input's own lines are as given:
    # they are scrubbed where the diagnosis is published).
    top = outcome.diagnosis.findings[0]
    written = [
        outcome.diagnosis.summary,
        top.confidence_reason,
        *(r.reason for r in top.alternatives_ruled_out),
    ]
    written += [e.text for f in outcome.diagnosis.findings for e in f.evidence if e.source == "probe"]
    assert not any(secret in text for secret in SECRETS for text in written)


def test_a_message_that_is_not_scrubbed_is_never_sent(diagnosis, ports, monkeypatch):
    import airflow_faultcat.hooks.llm as llm_hook

    monkeypatch.setattr(
        llm_hook, "build_messages", lambda *a, **k: [{"role": "user", "content": f"password={PASSWORD}"}]
    )
    with _standin("good", ports) as standin:
        outcome = _explore(standin, diagnosis)
    assert not outcome.accepted and outcome.steps == 0
    assert outcome.problems == ["refused to send: message 0 (user) is not scrubbed"]
    assert standin.requests == []


# ---- (e) tool calls that must run nothing ------------------------------------------------------

_SPAWNS: list[tuple[str, tuple]] = []
_RECORDING: list[bool] = []
_SPAWN_EVENTS = (
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "pty.spawn",
)


def _audit(event: str, args: tuple) -> None:
    if _RECORDING and _RECORDING[0] and event.startswith(_SPAWN_EVENTS):
        _SPAWNS.append((event, args))


def test_unknown_kinds_and_shell_targets_run_nothing(diagnosis, ports, tmp_path):
    if not _RECORDING:
        sys.addaudithook(_audit)  # stays for the process; records only while _RECORDING is [True]
        _RECORDING.append(False)
    _RECORDING[:] = [True]  # the hook sees a spawn when there is one
    subprocess.run(["true"], check=True)
    _RECORDING[:] = [False]
    assert [event for event, _ in _SPAWNS][:1] == ["subprocess.Popen"]
    _SPAWNS.clear()
    ran = []

    def recording_probe(spec, timeout):
        ran.append(spec)
        return run_probe(spec, timeout)

    marker = tmp_path / "pwned"
    with _standin("injection", ports, variables={"marker": marker}) as standin:
        explorer = LlmExplorer(
            LlmSettings(model=MODEL, timeout_seconds=10),
            base_url=standin.api_url,
            api_key=API_KEY,
            run_probe=recording_probe,
        )
        handle_tool_call = explorer._tool_result

        def watched(*args, **kwargs):
            # Record while the explorer handles a tool call (the HTTP client itself may run
            # `uname -p` once, through the platform module, for its headers).
            _RECORDING[:] = [True]
            try:
                return handle_tool_call(*args, **kwargs)
            finally:
                _RECORDING[:] = [False]

        explorer._tool_result = watched
        _SPAWNS.clear()
        try:
            outcome = explorer.explore(diagnosis)
        finally:
            explorer.close()
    assert _SPAWNS == [], "no process may be spawned while tool calls are handled"
    assert ran == [] and outcome.probes == []
    assert list(tmp_path.iterdir()) == []
    assert not outcome.accepted and any("answered without probing" in p for p in outcome.problems)
    answers = _tool_messages(standin.completions[1])
    assert len(answers) == 7 and all("evidence_id" not in a for a in answers)
    errors = [a["error"] for a in answers]
    assert "kind: Input should be 'dns'" in errors[0]
    assert "not host:port" in errors[1] and "rm -rf" in errors[1]
    assert "not a host name" in errors[2]
    assert "shell syntax" in errors[3]
    assert "command: Extra inputs are not permitted" in errors[4]
    assert errors[5].startswith("unknown tool 'exec'")
    assert "not valid JSON" in errors[6]
    assert all("nothing was run" in e for e in errors)


# ---- (f) answers the judge rejects -------------------------------------------------------------


def _good_answer() -> dict:
    """The final answer of ``good.json``."""
    turns = Transcript.load(TRANSCRIPTS / "good.json").turns
    return json.loads(turns[1]["content"].removeprefix("```json\n").removesuffix("\n```"))


def _broken(change) -> str:
    answer = _good_answer()
    change(answer)
    return json.dumps(answer)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (json.dumps(_good_answer()), None),
        ("The database is down, I think.", "not valid JSON"),
        ('{"root_cause": "SERVICE_DEPENDENCY", "findings": [', "not valid JSON"),
        (
            _broken(lambda a: a["findings"][0].update(pattern_id="postgres_999")),
            "unknown pattern_id 'postgres_999'",
        ),
        (
            _broken(lambda a: a["findings"][0]["observations"][1].update(evidence_ids=["E9"])),
            "unknown evidence ids cited: E9",
        ),
        (
            _broken(lambda a: a["findings"][0]["observations"][1].update(evidence_ids=[])),
            "evidence_ids: List should have at least 1",
        ),
        (_broken(lambda a: a["findings"][0].update(alternatives_ruled_out=[])), "no alternatives_ruled_out"),
        (_broken(lambda a: a.update(extra="field")), "extra: Extra inputs are not permitted"),
        (_broken(lambda a: a.update(root_cause="NETWORK")), "not the category of the first finding"),
    ],
)
def test_broken_answers_are_rejected(diagnosis, ports, answer, problem):
    with _standin("bad_answer", ports, variables={"answer": answer}) as standin:
        outcome = _explore(standin, diagnosis)
    assert len(outcome.probes) == 2
    if problem is None:  # the control: the same answer unbroken is accepted
        assert outcome.accepted, outcome.problems
        return
    assert not outcome.accepted and outcome.diagnosis == diagnosis
    assert len(outcome.problems) == 1 and problem in outcome.problems[0], outcome.problems


def test_judge_accepts_only_probe_backed_answers(diagnosis):
    evidence = dict(number_evidence(diagnosis))
    assert list(evidence) == ["E1", "E2", "E3"]
    evidence["E4"] = Evidence(source="probe", text="socket.create_connection(...) -> failed")
    evidence["E5"] = Evidence(source="probe", text="socket.create_connection(...) -> ok")
    text = json.dumps(_good_answer())
    new, problems = judge_answer(text, diagnosis, evidence, {"E4", "E5"}, model="m")
    assert problems == [] and new is not None and new.findings[0].pattern_id == "postgres_001"
    assert judge_answer(text, diagnosis, evidence, set())[0] is None
    assert judge_answer("", diagnosis, evidence, {"E4"})[1] == ["the model answered with no content"]


# ---- (g) a wrong key is a rejection, not an exception ------------------------------------------


def test_wrong_key_is_refused_and_rejected(diagnosis, ports):
    with _standin("good", ports) as standin:
        outcome = _explore(standin, diagnosis, api_key="sk-wrong-key-9876543210abcdef")
    assert not outcome.accepted and outcome.diagnosis == diagnosis and outcome.steps == 0
    assert len(outcome.problems) == 1 and outcome.problems[0].startswith("the model call failed: HTTP 401")
    [request] = standin.requests
    assert request.status == 401 and request.response["error"]["code"] == "invalid_api_key"
    assert set(request.response["error"]) == {"message", "type", "param", "code"}
    assert "9876543210abcdef" not in outcome.problems[0]


def test_unreachable_api_is_a_rejection(diagnosis, ports):
    explorer = LlmExplorer(
        LlmSettings(model=MODEL, timeout_seconds=5),
        base_url=f"http://127.0.0.1:{ports['closed_port']}/v1",
        api_key=API_KEY,
    )
    outcome = explorer.explore(diagnosis)
    assert not outcome.accepted and outcome.problems[0].startswith(
        "the model call failed: APIConnectionError"
    )


# ---- (h) configuration -------------------------------------------------------------------------


def test_explorer_from_conf_is_off_by_default(monkeypatch):
    from airflow_faultcat import conf
    from airflow_faultcat.get_provider_info import get_provider_info

    for key in ("LLM_ENABLED", "LLM_MODEL", "LLM_CONN_ID"):
        monkeypatch.delenv(f"AIRFLOW__FAULTCAT__{key}", raising=False)
    assert explorer_from_conf() is None
    options = get_provider_info()["config"]["faultcat"]["options"]
    for key in ("llm_enabled", "llm_conn_id", "llm_model", "llm_max_steps", "llm_timeout_seconds"):
        assert options[key]["default"] == conf.DEFAULTS[key]


def test_explorer_from_conf_reads_the_connection(monkeypatch, diagnosis, ports):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__LLM_ENABLED", "true")
    monkeypatch.setenv("AIRFLOW__FAULTCAT__LLM_MAX_STEPS", "4")
    monkeypatch.delenv("AIRFLOW__FAULTCAT__LLM_MODEL", raising=False)
    with pytest.raises(ValueError, match="llm_model must be set"):
        explorer_from_conf()
    monkeypatch.setenv("AIRFLOW__FAULTCAT__LLM_MODEL", MODEL)
    with _standin("good", ports) as standin:
        conn = {"conn_type": "generic", "host": standin.api_url, "password": API_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))
        explorer = explorer_from_conf()
        assert explorer is not None and explorer.settings.max_steps == 4
        outcome = explorer.explore(diagnosis)
        explorer.close()
    assert outcome.accepted, outcome.problems


def test_the_core_needs_neither_airflow_nor_openai():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('airflow', 'openai'):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from airflow_faultcat.core.llm import PROBE_TOOL, answer_schema\n"
        "print(PROBE_TOOL['function']['name'], len(answer_schema()['$defs']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "probe"
