"""Prometheus metrics for what operators watch; served at /metrics."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("giaoban_http_requests_total", "HTTP requests", ["route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("giaoban_http_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY)
WS_SESSIONS = Gauge("giaoban_ws_sessions", "Authenticated WebSocket sessions on this node", registry=REGISTRY)
WS_IN = Counter("giaoban_ws_messages_in_total", "Client messages accepted", ["type"], registry=REGISTRY)
WS_OUT = Counter("giaoban_ws_messages_out_total", "Server messages sent", ["type"], registry=REGISTRY)
WS_ERRORS = Counter("giaoban_ws_errors_total", "Error messages sent to clients", ["code"], registry=REGISTRY)
AUTH_FAILURES = Counter("giaoban_auth_failures_total", "Rejected logins and tokens", ["via"], registry=REGISTRY)
PARTICIPANTS = Gauge("giaoban_meeting_participants", "Sessions inside a meeting on this node", registry=REGISTRY)
LOOP_LAG = Gauge("giaoban_event_loop_lag_seconds", "Event-loop lag measured every second", registry=REGISTRY)
ONLINE = Gauge(
    "giaoban_endpoints_online", "Endpoints with a live connection on any node (from the store)", registry=REGISTRY
)
MEDIA_PEERS = Gauge("giaoban_media_peers", "Media peers on this node's media node", registry=REGISTRY)
MEDIA_FAILOVERS = Counter(
    "giaoban_media_failovers_total", "Meetings this node re-pinned because their media node was gone", registry=REGISTRY
)
MEDIA_RESETS = Counter(
    "giaoban_media_resets_total", "Clients told to open a new peer (their media node was lost)", registry=REGISTRY
)
MEDIA_MEETINGS = Gauge("giaoban_media_meetings", "Meetings with media on this node", registry=REGISTRY)
