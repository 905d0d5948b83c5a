"""One validator's application without gRPC: chains, ledger, payloads, catch-up."""
