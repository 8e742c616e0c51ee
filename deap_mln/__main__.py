import sys

from deap_mln.cli import main

sys.exit(main())
