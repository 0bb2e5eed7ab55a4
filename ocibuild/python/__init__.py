"""Python dependencies: locking requirements with uv for the target platform, and the dependency
layers (the lock installed by uv for the target, planned into groups, each a cached layer).

uv runs in a subprocess; nothing is built on the host for the target. Knows locks, wheels and
layers; nothing of bentos, images or registries.
"""
