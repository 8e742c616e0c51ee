"""Script entry for launchers that take a file path rather than ``-m module`` (SCOOP)::

    python -m scoop -n 2 "$(python -c 'import deap_mln.launch as m; print(m.__file__)')" evolve ...
"""
import sys

from deap_mln.cli import main

if __name__ == "__main__":
    code = main()
    if code:  # SCOOP reports even SystemExit(0) as an error, so exit only on failure
        sys.exit(code)
