# expect: failed to import (line 3): ValueError: bad constant
def build():
    raise ValueError("bad constant\nand a second line that must not reach the terminal")


WIDTH = build()
