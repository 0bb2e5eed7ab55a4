"""The server that runs a service, on the host (`ocibuild serve`) and inside images (`serve`).

It is copied into every image next to the SDK, so it imports only the standard library, the SDK,
`ocibuild.errors` and uvicorn: never the builder (bento, layers, image, registry, cli).
"""
