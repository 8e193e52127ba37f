"""DAG builders shipped in the wheel; the repository's top-level ``dags/`` files call them."""
