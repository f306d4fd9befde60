"""The local service lab: real servers from installed Debian binaries, on loopback, under one lab dir.

Entry points: `lab.lifecycle.up/down/status`, `lab.state.load_endpoints`, `lab.patroni_members`.
"""
