"""The known values of a failure: ids found in its texts, values fetched through the Task SDK."""

from __future__ import annotations

import json

import pytest

from airflow_faultcat.known_secrets import MAX_REFS, SecretRefs, known_values, scrubber_for


@pytest.mark.parametrize(
    ("text", "connections", "variables"),
    [
        ("[2026-01-01] {base.py:84} INFO - Connection Retrieved 'warehouse_pg'", ["warehouse_pg"], []),
        ("Using connection ID 'aws_default' for task execution.", ["aws_default"], []),
        ("PostgresHook(postgres_conn_id='etl.pg-main')", ["etl.pg-main"], []),
        ('{"event": "hook", "snowflake_conn_id": "sf_prod"}', ["sf_prod"], []),
        ("AirflowNotFoundException: The conn_id `missing_one` isn't defined", ["missing_one"], []),
        ("    pw = Variable.get(\"db_password\")", [], ["db_password"]),
        ("    key = Variable.get(key='api_key', default=None)", [], ["api_key"]),
        ("bash_command: echo {{ var.value.slack_token }}", [], ["slack_token"]),
        ("KeyError: 'Variable vault_secret does not exist'", [], ["vault_secret"]),
        ("routing_key=celery conn refused, nothing named here", [], []),
    ],
)
def test_ids_are_found_in_log_lines_and_tracebacks(text, connections, variables):
    refs = SecretRefs()
    refs.feed(text)
    assert refs.connections == connections
    assert refs.variables == variables


def test_refs_are_bounded_deduplicated_and_survive_xcom():
    refs = SecretRefs()
    for i in range(3 * MAX_REFS):
        refs.feed(f"conn_id=c{i % (2 * MAX_REFS)} and Variable.get('v{i}')")
    assert len(refs.connections) == MAX_REFS == len(set(refs.connections))
    assert len(refs.variables) == MAX_REFS
    back = SecretRefs.from_dict(json.loads(json.dumps(refs.as_dict())))
    assert back == refs
    assert SecretRefs.from_dict({"connections": "not a list", "variables": [1, None]}) == SecretRefs()
    assert SecretRefs.from_dict(None) == SecretRefs()


def test_values_come_from_the_connections_and_sensitive_variables(monkeypatch):
    """The Task SDK reads AIRFLOW_CONN_* / AIRFLOW_VAR_* when no API server is configured."""
    extra = {
        "region": "eu-west-1",
        "client_secret": "cs-Fake-0987654321",
        "keyfile": {"private_key": "pk-Fake-1"},
    }
    conn = {"conn_type": "postgres", "host": "db", "login": "etl", "password": "pw Fake#1?", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_PG", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_DB_PASSWORD", "var-Fake-Secret")
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_SIZE", "50000")
    refs = SecretRefs(["warehouse_pg", "not_defined"], ["db_password", "batch_size"])
    values = known_values(refs)
    assert set(values) == {"pw Fake#1?", "cs-Fake-0987654321", "pk-Fake-1", "var-Fake-Secret"}
    scrubber = scrubber_for({"secret_refs": refs.as_dict()})
    line = "psql: password pw Fake#1? rejected (pw%20Fake%231%3F in the URL); batch 50000, eu-west-1"
    assert scrubber.scrub(line) == "psql: password *** rejected (*** in the URL); batch 50000, eu-west-1"


def test_no_refs_no_lookup():
    assert known_values(SecretRefs()) == []
    assert scrubber_for(None).scrub("password=abc123xyz") == "password=***"
