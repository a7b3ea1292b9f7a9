"""HTTP serving: a FastAPI app (``create_app``) with dynamic batching, and ``serve`` to run it.

FastAPI and uvicorn are optional dependencies (``pip install transduce[serve]``); nothing here is
imported by the rest of the package.
"""
