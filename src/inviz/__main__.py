from inviz.cli import main

raise SystemExit(main())
