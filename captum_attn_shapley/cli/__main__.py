"""``python -m captum_attn_shapley.cli``."""

import sys

from captum_attn_shapley.cli.main import main

sys.exit(main())
