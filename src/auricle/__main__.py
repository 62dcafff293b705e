from auricle.cli import main
import sys
sys.exit(main())
