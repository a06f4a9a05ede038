"""Silences: keep every silence on every worker, and report why a page is muted.

Silences are created and expired through commands on `silence-commands` and
kept in a global table. Whether a muted transition is still notified (it is,
for receivers that heard of the incident before) is decided in
`streams.escalate`.
"""
