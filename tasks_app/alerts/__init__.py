"""Alerts: events found in the mirror (failed, lost, at risk, sync down, queue near cap),
delivered by Celery to channels (signed webhook, Feishu, DingTalk, Slack-compatible, e-mail),
exactly once per event and channel, bursts batched into one digest. See docs/alerts.md.
"""
