"""The endpoints' WebSocket: one Session actor per connection, the registry of live sessions, and
the meeting actions a session may take (join, offer, floor, mute, recording)."""
