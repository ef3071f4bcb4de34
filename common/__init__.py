"""Code every shop service shares: config access, the database dependency,
the error vocabulary, JSON over HTTP, tokens and the event envelope.

Nothing here knows about a particular service's domain.
"""
