"""Pure domain of modelbot: standard library only, no I/O, no clock or randomness (passed in)."""
