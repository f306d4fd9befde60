"""Asset names of the reporting layer (one place, so jobs, CLI and tests agree)."""

REPORT_GROUP = "reports"
SCORECARD = "regression_scorecard"
REPORT = "regression_report"
EXPORTS = "regression_exports"
REPORT_JOB = "regression_reporting"  # a job may not share its name with an asset
WAREHOUSE = "warehouse"  # the resource key of the DuckDB warehouse
