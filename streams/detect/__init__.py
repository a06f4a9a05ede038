"""Detect: turn metric samples and log lines into firing and resolved alerts.

Rules are evaluated per series on event time. Grouping, dedup into incidents
and suppression live in `streams.correlate`, not here.
"""
