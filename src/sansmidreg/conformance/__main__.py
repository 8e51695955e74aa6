# `python -m sansmidreg.conformance run|import ...` (the same as `sansmidreg conformance ...`).
from ._cli import cli_main

raise SystemExit(cli_main())
