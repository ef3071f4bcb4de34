"""The products service: the catalogue."""
