"""Operators' tools: daemon, local committees, committee files, TLS, SuperLink."""
