"""Runbooks: run a runbook's steps when a matching incident transition happens.

A runbook is a list of steps (http, shell, publish, notify, wait and
approval actions) with retries, rollback and a verification step, and it
is dry-run until `dry_run: false`. `agent` contains the faust agents and
the run table, `runner` executes runs, `engine` makes the decisions that
need no I/O, `render` fills templates, and `preview` backs
`tocsin runbook test`. HTTP requests and programs run in
`handlers.http_action` and `handlers.shell_action`. Run results reach the
timeline as commands that correlate applies.
"""
