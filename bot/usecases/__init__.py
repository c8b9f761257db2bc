"""Use cases: one short function per command, all reached through bot.service.Service."""
