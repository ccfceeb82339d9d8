import sys

from aquant_sim.cli import main

sys.exit(main())
