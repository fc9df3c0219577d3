"""Transports move bytes between the network and sessions; the rules live in ``core``."""
