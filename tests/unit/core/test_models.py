from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from airflow_faultcat.core.models import (
    SCHEMAS,
    Category,
    Diagnosis,
    EvidenceBundle,
    FailureContext,
    RecoveryAction,
    RecoveryOption,
    RecoveryPlan,
    json_schema,
)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_exports_as_json_schema(name):
    schema = json_schema(name)
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["type"] == "object"
    json.dumps(schema)


def test_schema_names_accept_class_names_and_reject_unknown():
    assert json_schema("Diagnosis")["title"] == "Diagnosis"
    assert json_schema("evidence_bundle")["title"] == "EvidenceBundle"
    with pytest.raises(KeyError, match="known: "):
        json_schema("nope")


def test_documents_carry_their_schema_version():
    diagnosis = Diagnosis(root_cause=Category.UNKNOWN, confidence=0, confidence_reason="-", summary="-")
    plan = RecoveryPlan(root_cause=Category.NETWORK)
    bundle = EvidenceBundle(bundle_id="b1", created_at=datetime.now(timezone.utc), diagnosis=diagnosis)
    assert diagnosis.schema_version == "faultcat.diagnosis.v1"
    assert plan.schema_version == "faultcat.recovery_plan.v1"
    assert bundle.schema_version == "faultcat.evidence_bundle.v1"
    assert FailureContext().schema_version == "faultcat.failure_context.v1"


def test_round_trip_through_json():
    context = FailureContext(
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=3,
        try_number=2,
        exception_type="ValueError",
        exception_message="bad",
    )
    assert FailureContext.model_validate_json(context.model_dump_json()) == context


def test_invalid_values_are_rejected_with_the_field_named():
    with pytest.raises(ValidationError, match="confidence"):
        RecoveryOption(action=RecoveryAction.RETRY, confidence=1.5)
    with pytest.raises(ValidationError, match="unknown_field|Extra inputs"):
        FailureContext.model_validate({"dag_id": "d", "unknown_field": 1})
    with pytest.raises(ValidationError, match="bundle_id"):
        EvidenceBundle(
            bundle_id=" ",
            created_at=datetime.now(timezone.utc),
            diagnosis=Diagnosis(
                root_cause=Category.UNKNOWN, confidence=0, confidence_reason="-", summary="-"
            ),
        )


BLOCK_AIRFLOW = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError("airflow is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
import airflow_faultcat.core.models, airflow_faultcat.core.diagnose, airflow_faultcat.core.scrub
import airflow_faultcat.core.report, airflow_faultcat.core.patterns.loader
import airflow_faultcat.core.plan, airflow_faultcat.core.policy, airflow_faultcat.core.handlers
import airflow_faultcat.core.shadow, airflow_faultcat.core.escalation
from airflow_faultcat.core.diagnose import Analyzer
d = Analyzer().diagnose("ERROR [Errno 28] No space left on device\\n")
assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]
print(d.root_cause.value)
"""


def test_core_works_with_airflow_blocked():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AIRFLOW], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "STORAGE"
