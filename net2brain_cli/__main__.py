from net2brain_cli.app import main

raise SystemExit(main())
