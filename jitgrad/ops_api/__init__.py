"""ops_api: public ops by family, above ``functional_ops`` (whose helpers and records they use).

``functional_ops`` holds the original core set; families added later live here, one module each
(reductions and scans, indexing and scatter, shape, linear algebra), so that each family reads
as one file. Every module lists its public names in ``__all__``; ``jitgrad`` exports them all.
"""
from . import indexing, linalg, misc, reductions, shape
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .misc import *  # noqa: F401,F403
from .reductions import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403

__all__ = [*reductions.__all__, *indexing.__all__, *shape.__all__, *linalg.__all__,
           *misc.__all__]
