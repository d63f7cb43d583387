"""The status page: overview, day pages, actions, /api/status, /metrics.

Public interface: ``gatewayd.web.model`` (view types and the ``GatewayBackend`` protocol),
``gatewayd.web.settings`` (``WebSettings``, ``parse_web``), ``gatewayd.web.server``
(``WebServer``). Import those modules directly; this package imports nothing heavy.
"""
