"""The S3 edge: uploadd's S3-compatible API on its own listener.

Everything S3 speaks lives here and nowhere below ``api/``: Signature
Version 4 (:mod:`.sigv4`), the ``aws-chunked`` body coding (:mod:`.chunked`),
S3's checksum algorithms (:mod:`.checksums`) and S3's error codes
(:mod:`.errors`). The core under ``uploadd/`` sees buckets, objects and
uploads, never an S3 request.
"""
