import sys

from mibzoo.cli import main

sys.exit(main())
