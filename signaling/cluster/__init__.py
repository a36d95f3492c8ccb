"""Media placement (placement.py, the interface; local_placement.py for one machine,
cluster_placement.py for several nodes on one Redis) and the cluster's plumbing: node registry,
remote media nodes and their internal API, forwarding of recording routes."""
