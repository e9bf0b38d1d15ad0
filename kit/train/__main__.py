"""``python -m kit.train``: see ``kit.train.cli``."""

import sys

from kit.train.cli import main

sys.exit(main())
