"""On-disk image formats, each read and written in one module: OCI layout directories
(`layout`), OCI archives that docker also loads (`archive`), and docker archives
(`docker_archive`). Readers check every digest before it names a member or a file, and verify
every blob they copy; writers take an Image or Index and know nothing of where it came from.
"""
