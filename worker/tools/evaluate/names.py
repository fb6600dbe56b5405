"""The names `recstream eval` knows: its methods and its generated streams.

Apart from the code that runs them (numpy, torch), so the command's options and
`--help` can list them without loading either.
"""

from __future__ import annotations

# Every method `suite.make_methods` builds, in the order the eval runs them.
METHOD_NAMES = ("recstream", "most-popular", "recent-popular", "isgd", "item-knn", "als")
# The drifting streams `data.synthetic` generates.
SYNTHETIC = ("genres", "clusters")
