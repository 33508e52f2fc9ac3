from include.sandbox.cli import main

raise SystemExit(main())
