"""Integration tests against a real Asterisk 22 and SIPp peers (marker `asterisk`)."""
