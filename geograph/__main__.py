import sys

from geograph.cli.main import main

sys.exit(main())
