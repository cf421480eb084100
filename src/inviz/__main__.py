"""``python -m inviz``: the ``inviz`` command line (:func:`inviz.cli.main`)."""

from inviz.cli import main

raise SystemExit(main())
