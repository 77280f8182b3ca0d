"""Where the API is and how a job finds its key (light: the command line imports it for ``--help``)."""

#: The Waves API; ``--base-url`` (env ``BATCHTTS_BASE_URL``) points elsewhere.
DEFAULT_BASE_URL = "https://api.smallest.ai"
#: The environment variable the API key is read from when none is given.
KEY_ENV = "SMALLEST_API_KEY"
#: What the bundled local server accepts (it checks that a key is sent, not which).
LOCAL_KEY = "local-server-key"
