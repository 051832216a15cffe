#!/usr/bin/env python
"""Convert an original CompVis taming-transformers checkpoint to taming_hf format.

    python scripts/convert_original_checkpoint.py --checkpoint last.ckpt --config model.yaml --output_dir out

See docs/conversion.md for every official checkpoint and its command.
"""

import sys

from taming_hf.conversion.cli import main

if __name__ == "__main__":
    sys.exit(main())
