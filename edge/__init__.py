"""Borderlane kiosk agent: reads travel documents, screens travellers offline, records crossings."""
