"""The OCI model: digests, platforms, media types, descriptors, references, and images, indexes
and artifacts as immutable values (after go-containerregistry's `pkg/v1`).

Every value read from a file or a response is parsed here once, into a type that cannot hold a
malformed digest or platform. A change to an image gives a new image; exact bytes read are kept
so that what is passed through is never re-serialized. Knows JSON and hashing; nothing of
bentos, layers' contents, registries' protocols or where a sink writes.
"""
