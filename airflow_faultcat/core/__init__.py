"""The pure library of airflow-faultcat.

Nothing under :mod:`airflow_faultcat.core` imports ``airflow``: the models, the pattern library,
the analyzer and the scrubber run (and are tested) without Airflow installed.
"""
