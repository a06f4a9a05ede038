"""In-process fakes of the Slack Web API and the PagerDuty Events API v2."""
