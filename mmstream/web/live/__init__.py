"""The live view the daemon serves while a pipeline runs (docs/web.md).

    state.py    what the page shows, bounded, with revisions viewers ask news by
    health.py   the health panel: sources, queues, drops, sinks, models, CPU
    sink.py     the per-pipeline sink and observer that feeds the state
    view.py     LiveView: owns the above across reloads, makes pictures on demand
    updates.py  the Server-Sent Events stream of one viewer
    server.py   the aiohttp application: routes, token, start and close
    service.py  what the daemon (daemon.py) calls: start, keep or move the server
"""
