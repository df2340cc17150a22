"""Web: the server-rendered dashboard."""
