"""Slack front end: bolt app (slash command, buttons, modals), Block Kit card, outbox delivery."""
