"""How rows map to files: long texts split and joined, chapters, voice fan-out, dataset indexes."""
