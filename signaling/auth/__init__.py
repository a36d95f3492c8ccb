"""Who may do what: logins and their limits, signed tokens, the role policy, the audit trail."""
