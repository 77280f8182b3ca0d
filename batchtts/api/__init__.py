"""The Waves API on the wire: the request schema, the SSE client and decoder, request ids."""
