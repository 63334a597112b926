"""c2c-ari: a Kazoo-compatible click-to-call service for Asterisk."""

__version__ = "0.1.0"
