"""Cascades: an edge media node pulls a meeting from its origin node over one trunk (a peer
connection whose m-lines carry labelled streams), for the subtree of endpoints it serves."""
