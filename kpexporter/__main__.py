import sys

from kpexporter.cli import main

sys.exit(main())
