import sys

from worker.lab.sim_placement.run import main

sys.exit(main())
