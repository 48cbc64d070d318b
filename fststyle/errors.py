"""The error the project raises for problems it can state in one line: a missing package, a full
disk, an export that does not match. The entry points print it (like ValueError and the file errors)
as ``error: <message>`` without a traceback; any other exception keeps its traceback."""


class UserError(Exception):
    """A problem with the user's input, files or machine that says what to do about it."""


def first_line(err: BaseException) -> str:
    """An error as one line: its message's first line, or its type's name when it has no message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def float_in(value: object, low: float, high: float, message: str) -> float:
    """``value`` (a number or its text) as a float in [low, high]; otherwise ValueError(``message``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:
        raise ValueError(message)
    return number


def whole_in(value: object, low: int, high: int, message: str) -> int:
    """``value`` (a whole number or its text; not a bool, not a fraction) as an int in [low, high];
    otherwise ValueError(``message``)."""
    number = None
    if not isinstance(value, bool):
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            number = None
    if number is None or not low <= number <= high:
        raise ValueError(message)
    return number
