"""The kiosk agent: one asyncio process wiring devices, lane, uplink, health and pages.

- :mod:`~edge.agent.config`: ``kiosk.toml``, checked whole at start (:func:`load_config`);
- :mod:`~edge.agent.supervisor`: runs each part, restarts it with backoff, reports its state;
- :mod:`~edge.agent.health`: the heartbeat (system figures + every part's state);
- :mod:`~edge.agent.commands`: the console's commands (ping, resync, reload, restart, ...);
- :mod:`~edge.agent.systemd`: sd_notify readiness and watchdog;
- :mod:`~edge.agent.agent`: :class:`Agent`, the wiring (``borderlane-edge run``).
"""
