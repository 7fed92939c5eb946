"""``python -m hsm_sim``."""

from hsm_sim.cli import main

raise SystemExit(main())
