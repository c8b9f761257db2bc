"""Local stand-ins for production infrastructure: a TF Serving emulator, demo SavedModels, demo certificates.

Used by `modelbot demo` and the integration tests; nothing here is imported by the bot at run time.
"""
