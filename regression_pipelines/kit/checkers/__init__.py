"""Shared judges, as Jepsen keeps its checkers: the acknowledged-write ledger (`ledger`) and the black-box
checks of a Citus cluster's layout (`citus`, `citus_layout`). Plain Python; no Dagster, no area, no lab."""
