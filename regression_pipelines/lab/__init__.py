"""The local service lab: real servers from installed Debian binaries, on loopback, under one lab dir.

Entry points: `lab.lifecycle.up/down/status_rows`, `lab.state.load_endpoints`, `lab.patroni_members`, and
for destructive faults `lab.control` (`broker_is_lab_owned`, `restart_service`, `kill_service`: they refuse
servers the lab did not start). The services themselves: `lab.services`, one module each.
"""
