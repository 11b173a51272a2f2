# expect: failed to import (line 5): it called sys.exit(0)
# A plugin that ends the process while it is imported: ganbench used to exit 0, silently.
import sys

sys.exit(0)
