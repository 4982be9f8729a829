"""The one base class for errors a user can cause and fix; the CLI prints them as one line."""


class UserError(Exception):
    """An error caused by input or environment (bad file, unknown id, dead RPC), not by a bug."""
