# expect: failed to import (line 4): it called sys.exit('no GPU here')
import sys

sys.exit("no GPU here")
