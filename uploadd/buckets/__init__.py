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
A multipart upload is an unfinished upload of the resumable core whose
parts are partial uploads, joined into the object's file when completed.

``rules``      bucket names, keys, file names and types, who may do what
``records``    objects as given out, and what a client says of one
``listing``    pages of keys: prefixes, delimiters, continuation tokens
``core``       :class:`Buckets`: buckets and objects
``parts``      multipart uploads and their parts as shown, entity tags
``multipart``  :class:`Multipart`: uploads made of parts
"""

from uploadd.buckets.core import Buckets
from uploadd.buckets.listing import MAX_KEYS, Listing
from uploadd.buckets.multipart import Multipart, PartBody
from uploadd.buckets.parts import MultipartUpload, PartsPage, UploadsPage
from uploadd.buckets.records import ObjectInfo, ObjectMeta
from uploadd.buckets.rules import MAX_KEY_BYTES, Reason

__all__ = [
    "MAX_KEYS",
    "MAX_KEY_BYTES",
    "Buckets",
    "Listing",
    "Multipart",
    "MultipartUpload",
    "ObjectInfo",
    "ObjectMeta",
    "PartBody",
    "PartsPage",
    "Reason",
    "UploadsPage",
]
