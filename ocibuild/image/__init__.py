"""OCI images as immutable values: descriptors, layers, config, manifest, and the base-image
sources they start from. Building an image is a function: base + layers + config changes.

Knows OCI JSON and where blob bytes live; knows nothing of bentos, uv or registries' protocols.
"""
