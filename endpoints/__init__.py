"""Endpoints: the 4-tier directory (model, YAML, tree, selectors) and the room-terminal agent."""
