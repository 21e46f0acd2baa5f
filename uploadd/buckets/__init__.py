"""Buckets and their objects, whatever protocol speaks of them (S3's, in
``uploadd/api/s3/``). No HTTP here: refusals are the core's errors
(``uploadd/errors.py``), each with a :class:`Reason` in ``extra["reason"]``
for an edge whose protocol names every case.

A bucket is one user's; its owner and admins may use it, as far as their
scopes allow (:data:`~uploadd.buckets.rules.NEEDS`). An object is a file of
the library: its key (at most 1024 bytes of UTF-8) names it within its
bucket, the file is named after the key's last segment, and putting a key
again stores a new file whose ``parent`` is the one before, so the object
is always the newest of its versions. What a client said of an object (its
content type as given, user metadata, headers to answer with) and its
entity tag ride in the object's metadata, so listings need no file records.

``rules``      bucket names, keys, file names and types, who may do what
``records``    objects as given out, and what a client says of one
``listing``    pages of keys: prefixes, delimiters, continuation tokens
``core``       :class:`Buckets`: buckets and objects
"""

from uploadd.buckets.core import Buckets
from uploadd.buckets.listing import MAX_KEYS, Listing
from uploadd.buckets.records import ObjectInfo, ObjectMeta
from uploadd.buckets.rules import MAX_KEY_BYTES, Reason

__all__ = [
    "MAX_KEYS",
    "MAX_KEY_BYTES",
    "Buckets",
    "Listing",
    "ObjectInfo",
    "ObjectMeta",
    "Reason",
]
