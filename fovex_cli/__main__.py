from fovex_cli.app import main

raise SystemExit(main())
