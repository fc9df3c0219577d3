"""The HTTP API for backends."""
