"""``python -m congvan.workflow.cli``."""

import sys

from . import main

sys.exit(main())
