"""Relaydesk's platform-neutral core: domain, commands, grammar, policy and services."""
