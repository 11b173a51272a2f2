# expect: failed to import: SyntaxError: invalid syntax
def broken(:
    pass
