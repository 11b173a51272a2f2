# expect: failed to import (line 2): BaseException: not an Exception subclass
raise BaseException("not an Exception subclass")
