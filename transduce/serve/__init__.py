"""HTTP serving (``transduce serve``), on the optional FastAPI, uvicorn and prometheus_client
(``pip install transduce[serve]``); nothing else in the package imports it.

``app``: :func:`create_app` (the routes and their JSON answers) and :func:`serve` (uvicorn) --
``requests``: :class:`Limits`, the ``POST /translate`` body, its checks and its decoding
settings, and the error JSON -- ``batcher``: the worker thread that decodes queued requests,
merging equal settings -- ``metrics``: the Prometheus metrics and the middleware that records them
-- ``front_door``: the checks before any route (Host, token, content type) and the listening socket.
"""
