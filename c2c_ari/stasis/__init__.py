"""The Stasis application: one coroutine per call, driven by ARI events."""
