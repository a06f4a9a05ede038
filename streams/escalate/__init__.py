"""Escalate: decide who hears about each transition, and when a level escalates.

Delivery to each receiver lives in `streams.notify`. The move to the next
level is applied by `streams.correlate` as a command, so the timeline stays
with its one owner.
"""
