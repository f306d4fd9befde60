"""The upgrade matrix: areas run against several versions of a component (or named setting sets) side by side.

- `citus_install`: private, cached Citus builds, one PostgreSQL 15 tree per Citus version (also what the lab's
  Citus service starts from); stdlib only, so the lab can import it.
- `versions`: what `--versions` and `--settings` mean (components, isolated environments, setting sets).
- `compare`: the statistics (ratio of medians with a bootstrap interval, A/A resolution); pure.
- `envs`, `child`: isolated uv environments per Python-library version and the child process running an area.
- `run`, `grid`, `cli`, `dagster_runs`, `store`: the orchestration, the terminal grid, `regress matrix`.

This package's `__init__` imports nothing, so importing one module does not pull in Dagster.
"""
