"""The only code that talks to the Kubernetes API (through kubernetes_asyncio).

It speaks plain JSON dicts, counts its requests (for the benchmark), and turns
HTTP errors into the domain errors below; nothing above it sees HTTP.
"""
