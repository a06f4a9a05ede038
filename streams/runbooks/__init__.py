"""Runbooks: run the configured action when a matching incident opens.

Runbooks are dry-run until enabled. The action itself lives in
`handlers.http_action`; the result reaches the timeline through correlate.
"""
