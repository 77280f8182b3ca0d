"""When a request may start: the throttle (streams, pacing, 429 back-off), the start gate, retries."""
