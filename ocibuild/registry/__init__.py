"""The OCI distribution client: references, configuration (mirrors, plain HTTP), credentials,
an authenticating and retrying transport, pull and push. Knows images and blobs; nothing of bentos.

oras (0.2.43) is used where it fits, for parsing `WWW-Authenticate` challenges; the transport is
our own `requests` code because oras keeps one token for every scope (a pull token then fails a
push), reads whole blobs into memory to upload them, re-serializes manifests (so the digest of
the bytes sent is not the one computed), has no cross-repository mount, and looks credentials up
without `DOCKER_CONFIG`, identity tokens or Docker Hub's `https://index.docker.io/v1/` key.
"""
