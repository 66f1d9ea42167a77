from clapdesk.cli import main

raise SystemExit(main())
