"""Several nodes on one Redis: node registry, meeting pinning, remote media nodes."""
