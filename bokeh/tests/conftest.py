"""pytest set-up for the launcher's tests: the launcher's folder (serve.py, launcher/) is importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
