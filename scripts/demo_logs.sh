#!/usr/bin/env bash
# The demo: diagnose every example task log under examples/ with the faultcat CLI, show the JSON
# a machine reads, and show secret scrubbing. Run through `make demo-logs` (which sets up first).
set -euo pipefail
cd "$(dirname "$0")/.."
FAULTCAT=${FAULTCAT:-.venv/bin/faultcat}

for log in examples/*.log; do
  printf '\n=== faultcat diagnose %s\n' "$log"
  "$FAULTCAT" diagnose "$log"
done

printf '\n=== faultcat diagnose --json examples/airflow3_postgres_auth.log (top-level fields)\n'
"$FAULTCAT" diagnose --json examples/airflow3_postgres_auth.log | .venv/bin/python -c '
import json, sys
d = json.load(sys.stdin)
top = d["findings"][0]
print(json.dumps({"root_cause": d["root_cause"], "confidence": d["confidence"],
                  "finding": {k: top[k] for k in ("category", "pattern_id", "confidence")},
                  "evidence": top["evidence"][0]}, indent=2))'

printf '\n=== faultcat scrub examples/leaky_connection.log\n'
"$FAULTCAT" scrub examples/leaky_connection.log | sed -n 2p

printf '\n=== faultcat patterns validate (the shipped library)\n'
"$FAULTCAT" patterns validate
