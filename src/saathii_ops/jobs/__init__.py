"""The other jobs' services: badges, presence, call cleanup, audits, pauses, log pruning."""
