"""The typed MFO API client."""
