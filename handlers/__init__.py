"""Side effects at the edges: Slack, PagerDuty, the console, runbook HTTP calls."""
