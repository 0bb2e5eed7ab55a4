"""Layers: what goes into each layer (the plan), writing it as a deterministic compressed blob
in one streaming pass, and the content-addressed cache that makes an unchanged layer free.

Knows tar, compression and digests; knows nothing of bentos, registries or image manifests.
"""
