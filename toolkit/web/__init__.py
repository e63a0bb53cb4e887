"""The web demo: its page's files and engines, and the dev server on 127.0.0.1."""
