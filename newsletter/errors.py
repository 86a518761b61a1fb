"""The root of every domain error: refused input whose message is safe to show.

Only the edges (web, CLI) turn these into 4xx answers or exit codes.
"""


class DomainError(Exception):
    """A request the domain refuses; str(error) says why, for the user."""
