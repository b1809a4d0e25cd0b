"""Borderlane console: provisions kiosks, signs watchlist deltas, stores crossings."""
