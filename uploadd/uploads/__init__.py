"""The protocol-neutral resumable core: tus, Content-Range chunks and any
protocol to come are adapters in ``api/`` that translate their headers to it.

``rules``      offsets, lengths (declared, deferred, limits), spans, expiry,
               who may see an upload, when it is complete; pure, no I/O
``writers``    one appender per upload, or spans that do not overlap
``resumable``  records, data files, running hashes, life cycle, the end
``appends``    bodies that continue the bytes in order from the offset
``spans``      bodies that fill ``[start, end)``, and span completion
``checks``     digests a client vouches for one body or the whole file with
``ranges``     span arithmetic; ``data``: hashing and joining data files
"""
