# expect: failed to import (line 2): ModuleNotFoundError: No module named 'ganbench_no_such_module'
import ganbench_no_such_module  # noqa: F401
