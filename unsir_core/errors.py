"""Errors that carry a message meant for the user.

Every failure a user can cause (a wrong name, a bad class list, missing data, a checkpoint
that does not fit, a diverging loss) raises a subclass of :class:`UnsirError`. The CLI prints
the message and exits non-zero; the dashboard shows it in the page. Anything else is a bug.
"""


class UnsirError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class UnknownNameError(UnsirError, KeyError):
    """A data set, model or method name that is not in its registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InvalidClassesError(UnsirError, ValueError):
    """Forget classes that are empty, out of range, repeated, or cover every class."""


class InvalidConfigError(UnsirError, ValueError):
    """A hyper-parameter, seed or option out of its range or of the wrong type."""


class DataMissingError(UnsirError, FileNotFoundError):
    """A data set that is neither on disk nor downloadable."""


class BadDataError(UnsirError, ValueError):
    """Data on disk that cannot be read, such as a file that does not decode as an image."""


class CheckpointError(UnsirError):
    """A checkpoint that is corrupt or of another architecture / class count."""


class NonFiniteLossError(UnsirError, FloatingPointError):
    """The loss became NaN or infinite; the caller's model is left untouched."""


class ZeroGlanceViolation(UnsirError):
    """Unlearning code tried to read a forget-class sample."""
