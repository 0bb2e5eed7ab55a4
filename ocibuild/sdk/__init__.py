"""What users import: pure data describing a service and its image.

The SDK validates at definition time and performs no I/O. It is shipped inside every image
(the service's own `service.py` imports it there), so it may import only the standard library,
`packaging` and `ocibuild.errors`.
"""
