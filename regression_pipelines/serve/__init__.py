"""`regress serve`: Dagster's production topology on this machine.

Three processes, as teams run them: a gRPC code server (`dagster api grpc`) serving this code location, the
webserver and the daemon, both reading a generated workspace file that points at the code server, on a
DAGSTER_HOME whose storage is PostgreSQL (the lab's private `dagster_storage` server, or the one named by
REGRESS_DAGSTER_PG_URL). What it started is recorded by PID in a state file and stopped by PID.
"""
