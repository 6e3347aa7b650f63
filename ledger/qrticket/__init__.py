"""The signed QR ticket format (Base45, claims, signatures) and the offline gate check; pure, shared by the API
and the client library.
"""
