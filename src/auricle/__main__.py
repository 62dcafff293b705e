import sys

from auricle.cli import main

sys.exit(main())
