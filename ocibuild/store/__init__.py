"""The local store shared by bentos and models: versioned records, typed YAML records, tags, the
content-addressed blob store and safe archive extraction. Every name, version and digest that
becomes a path is validated here first; every write is staged and renamed into place.

Knows files and records; nothing of images, registries or the SDK.
"""
