"""Adapters: each turns a platform's events into core calls and the core's replies into messages."""
