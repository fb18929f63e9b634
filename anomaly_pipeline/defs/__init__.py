"""Dagster wiring (thin): assets, checks, resources, sensors and schedules per pipeline stage.

Everything here calls the domain core and adds metadata; heavy libraries (torch, mlflow, dbt's
runner) are imported inside asset bodies so that loading the code location stays cheap.
"""
