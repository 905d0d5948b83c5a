"""Deterministic network simulator, Byzantine behaviours, safety/liveness checker."""
