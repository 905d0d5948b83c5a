"""Client side: Flower mods and wrappers that turn any ClientApp into a PoT miner."""
