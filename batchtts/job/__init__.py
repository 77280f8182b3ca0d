"""One job: the spec, the runner, a row's attempts, the recorder, the folder lock."""
