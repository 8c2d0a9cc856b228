"""Backups proven by restores: pgBackRest, point-in-time recovery, restore drills."""
