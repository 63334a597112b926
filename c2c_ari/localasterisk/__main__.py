"""`python -m c2c_ari.localasterisk up|down|status|rx`, the same as `c2c-ari asterisk ...`."""

from c2c_ari.localasterisk.cli import main

raise SystemExit(main())
