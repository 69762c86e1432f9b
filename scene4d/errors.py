"""The one exception type for bad input from users or upstream stages."""


class InputError(ValueError):
    """Input that cannot be used, with a one-line message naming what is wrong.

    ``run.py`` prints the message alone (no traceback) and exits non-zero.
    """
