import sys

from clone_operator.cli import main

sys.exit(main())
