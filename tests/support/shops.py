"""The API key and secret the test shops are configured with."""

from __future__ import annotations

#: A secret nobody could mistake for anything else; tests look for it in every output.
SECRET = "sekrit-5f1d0c-never-shown"
API_KEY = "test-key"
