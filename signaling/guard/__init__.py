"""What a stranger can send, bounded: client addresses behind proxies, connection and body limits,
SDP offer and ICE candidate checks, secrets kept out of logs."""
