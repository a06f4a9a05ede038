"""Correlate: dedup alerts into incidents and apply every incident transition.

This stage is the one owner of incident state: alerts and commands for one
group key arrive on one partition, and only this stage writes the timeline.
Notifications, escalation timers and runbooks react to the timeline elsewhere.
"""
