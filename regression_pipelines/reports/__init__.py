"""Scorecard, warehouse, report and exports: what regressed, since when, and where, for every discovered area.

Data flows one way: the Dagster instance (source of truth) -> `regression_scorecard` (judges every area and
copies the history into the DuckDB warehouse, its only writer) -> `regression_report` (one self-contained
HTML file) and `regression_exports` (Parquet and JSON). The pure parts (`model`, `health`, `series`,
`charts`, `page`) never import Dagster.
"""
