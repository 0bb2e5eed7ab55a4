"""Bentos: a service directory collected, locked and stored as a versioned, self-contained unit.

Knows the SDK's specs and the store layout; knows nothing of images or registries.
"""
