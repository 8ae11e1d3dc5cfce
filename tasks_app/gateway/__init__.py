"""The Ark-compatible gateway: /api/v3/contents/generations/tasks served by ArkDash.

Reads come from the mirror, create and delete go to Ark through the account's shared
budget, and callers authenticate with personal API tokens (never the Ark key).
"""
