"""The one base class of mieruka's user-facing errors: catch it to handle any bad input."""


class MierukaError(ValueError):
    """Bad input (a file, a flag, a layer, a target); the message says what came and what to do."""
