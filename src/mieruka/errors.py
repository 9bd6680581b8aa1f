"""The base classes of mieruka's user-facing errors (catch MierukaError to handle any bad input) and
warnings (shown by the command line as one line each)."""


class MierukaError(ValueError):
    """Bad input (a file, a flag, a layer, a target); the message says what came and what to do."""


class MierukaWarning(UserWarning):
    """Something the run went on with but the user should know; the message says what and what to do."""


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a message's first line, cut at a word if longer than `limit`: what a
    one-line error quotes of another library's (often many-line) message."""
    lines = text.strip().splitlines()
    sentence = lines[0].split(". ", 1)[0].rstrip(".") if lines else ""
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0] + "..."
    return sentence
