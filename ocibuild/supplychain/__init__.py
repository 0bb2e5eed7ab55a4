"""The supply-chain record of an image: an SBOM and a SLSA provenance per image, made from the
bento's locks (never by scanning a file system), and attached to the image as OCI referrers
(artifact manifests whose `subject` is the image manifest). Deterministic: same inputs, same bytes.
"""
