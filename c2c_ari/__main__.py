from c2c_ari.cli import main

raise SystemExit(main())
