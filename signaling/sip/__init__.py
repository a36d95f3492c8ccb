"""SIP for room systems (#14): the stack (stack.py and its transport, wire, transactions, calls,
digest and limits modules: sockets, transactions, dialogs) and the gateway on top of it (gateway.py,
admission.py, dialout.py, member.py: which meeting a call joins, dial-out, media through the seam).
The stack's API is described in signaling/sip/stack.py's docstring."""
