"""Signaling: REST (``api/``), the endpoints' WebSocket sessions (``ws/``), logins and tokens
(``auth/``), input guards (``guard/``), meetings and their schedule (``meetings/``), the state store
(``store/``), several nodes (``cluster/``), pages (``web/``); ``app`` wires it all, ``cli`` runs it."""
