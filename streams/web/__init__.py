"""The web view: incidents, commands and response metrics over HTTP (faust web).

Handlers read tables and publish commands; they never write a table, because
the correlate stage is the one owner of incident state.
"""
