"""The console adapter: the same agent in a terminal."""
