"""What happened to each row: the journal, the resume index, the results manifest, summary.json."""
