from ops.chaos.run import main

raise SystemExit(main())
