"""A custom recovery handler, registered by entry point, for the integration tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow_faultcat.core.handlers import RecoveryHandler
from airflow_faultcat.core.models import Category, RecoveryAction, RecoveryOption, Risk


class MarkerHandler(RecoveryHandler):
    """For VIRTUALIZATION failures: write a marker file (standing for "restart libvirtd")."""

    name = "it_marker"

    def propose(self, diagnosis):
        if diagnosis.root_cause is not Category.VIRTUALIZATION:
            return None
        return RecoveryOption(
            action=RecoveryAction.CUSTOM,
            risk=Risk.LOW,
            confidence=0.95,
            steps=["Write the marker file."],
            rationale="The test handler fixes every VIRTUALIZATION failure.",
        )

    def run(self, failure, diagnosis, context):
        marker = Path(os.environ["AIRFLOW_HOME"]) / "it_marker.json"
        marker.write_text(json.dumps({"dag_id": failure.dag_id, "task_id": failure.task_id}))
        return {"detail": f"wrote {marker.name}", "cleared": False}
