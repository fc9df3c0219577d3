"""Live sports feeds: sporting events, per-sport score updates, reactions, viewer counts.

See ``docs/sports.md``. The rules (:mod:`.rules`, :mod:`.reactions`, :mod:`.viewers`) are
plain code without I/O; :class:`Sports` is the service the server mounts.
"""

from .service import PARTIALS, VIEWERS_PREFIX, Sports

__all__ = ["PARTIALS", "VIEWERS_PREFIX", "Sports"]
