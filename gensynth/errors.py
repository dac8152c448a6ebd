class UserError(Exception):
    """A mistake in the user's input: the CLI prints it as one line and exits with code 2."""


def first_line(err: BaseException) -> str:
    """An exception's message cut to one line (its type's name when it has none), for one-line reports."""
    return str(err).splitlines()[0] if str(err).strip() else type(err).__name__
