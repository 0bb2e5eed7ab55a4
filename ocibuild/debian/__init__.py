"""Debian packages without apt or a shell: read the archive's indexes, resolve dependencies, verify
and unpack `.deb`s into deterministic layers, with dpkg status records for image scanners.

Maintainer scripts are never run; what they would generate that an image needs (the CA bundle,
users) is written by ocibuild. Knows layers and HTTP; nothing of bentos or registries.
"""
