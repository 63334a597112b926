"""Domain rules without HTTP: validation, contacts, whitelists, throttling, services."""
