"""`python -m clone_operator`: the command line (`cli.main`); owns nothing else."""

import sys

from clone_operator.cli import main

sys.exit(main())
