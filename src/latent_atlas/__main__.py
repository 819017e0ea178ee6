"""``python -m latent_atlas`` is the same as the ``latent-atlas`` command."""

from latent_atlas.cli import main

raise SystemExit(main())
