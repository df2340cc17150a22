"""Server: database models, queries, analysis, API, workers and the command line."""
