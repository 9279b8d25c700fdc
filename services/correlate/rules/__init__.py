"""Correlation rules: the YAML schema, the loader and the default pack.

Rules are data. :func:`~.loader.load_dir` reads a directory of YAML files
(one rule per file, or a pack: ``rules: [...]``) and validates every rule
strictly; the default pack ships in ``default/`` and its fixtures in
``fixtures/``.
"""

from pathlib import Path

#: The rule pack shipped with Vigie.
DEFAULT_DIR = Path(__file__).parent / "default"
#: The fixtures of the default pack (``vigie rules test``).
FIXTURES_DIR = Path(__file__).parent / "fixtures"
