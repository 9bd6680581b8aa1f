"""The base classes of mieruka's user-facing errors (catch MierukaError to handle any bad input) and
warnings (shown by the command line as one line each)."""


class MierukaError(ValueError):
    """Bad input (a file, a flag, a layer, a target); the message says what came and what to do."""


class MierukaWarning(UserWarning):
    """Something the run went on with but the user should know; the message says what and what to do."""
