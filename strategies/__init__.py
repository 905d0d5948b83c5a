"""Flower strategies: PoTStrategy (the committee replaces Flower's single server)."""
