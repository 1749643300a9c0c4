"""The index layer: a binary's facts as Arrow tables, cached by build-id."""
