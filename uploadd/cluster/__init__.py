"""The storage cluster: nodes, their health, placement, replication, repair.

- ``interface.py``: the node seam, :class:`INodeClient`, what uploadd asks
  of one storage node; ``amp_rsync.py`` implements it for ``twistd noded``
  (AMP + rsync), ``memory.py`` as an in-memory twin for tests;
- ``registry.py``: the nodes known and their health; ``pinger.py`` keeps it;
- ``placement.py``: which nodes get a file's copies;
- ``replicator.py``: copies to them, verified; ``repair.py``: copies again
  what was lost, drops surplus, audits a node back from DOWN;
- ``locator.py``: the nearest node to download from, and signed URLs.

Only ``amp_rsync.py`` knows what a noded node speaks; the rest use the seam.
"""
