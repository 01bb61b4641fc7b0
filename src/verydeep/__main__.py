"""`python -m verydeep` (and `torchrun -m verydeep`) runs the command line."""

import sys

from .cli import main

sys.exit(main())
