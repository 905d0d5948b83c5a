"""gRPC transport: validator daemons and the coordinator's committee client."""
