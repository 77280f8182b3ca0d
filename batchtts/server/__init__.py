"""The local Waves-compatible server: same API, no network, no key needed."""
