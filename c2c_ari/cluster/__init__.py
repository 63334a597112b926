"""What makes several instances safe together: who is alive, leases that one instance holds
at a time, the reaper that takes over a dead instance's calls, and calls reached across
instances over the store's bus. With SQLite there is one instance, and the same code finds
the previous run's calls at start-up."""
