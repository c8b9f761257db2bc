"""Every user-facing sentence lives in this package, so wording is reviewed and changed in one place.

commands  the /model grammar: usage lines, help, parse errors
replies   the service's answers: requests, approvals, rollouts, status, history, denials
slack     Slack-only wording: cards, buttons, modals, ephemeral refusals, alert posts
"""
