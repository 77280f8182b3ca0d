"""Where files go and how they land: safe names inside DIR, temp files, durable renames."""
