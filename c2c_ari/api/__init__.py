"""HTTP only: Kazoo's envelope and errors, authentication, and one module per resource."""
