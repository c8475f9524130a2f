"""``python -m captum_attn_shapley``: the command-line program (as ``python -m captum_attn_shapley.cli``)."""

import sys

from captum_attn_shapley.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
