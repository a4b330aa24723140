from tunehouse.cli import main

raise SystemExit(main())
