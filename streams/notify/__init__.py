"""Notify: deliver each notification once to its receiver, with retries.

Who is notified of what is decided in `streams.escalate`; the vendor calls
live in `handlers`.
"""
