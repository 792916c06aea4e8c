"""The FastAPI service, the zh-CN web console and the ``yunshu`` command line."""
