"""``python -m facesortd`` runs the command line."""

import sys

from facesortd.cli import main

sys.exit(main())
