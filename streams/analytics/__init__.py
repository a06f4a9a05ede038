"""Analytics: MTTA and MTTR per service in windowed tables, from the timeline.

Response times are taken from incident events only; an incident belongs to
the window of its opened time. Query shaping for the web view is in
`streams.analytics.metrics`.
"""
