"""Reports: records for JSON and the terminal."""
