"""The accounts' web layer: who is calling (``identity``: sessions, tokens, Basic, scopes,
CSRF), the sign-in and account pages (``routes``), the members' administration (``admin``)
and their forms. Account rules live in ``modelport.auth`` (``accounts``, ``sessions``,
``tokens``…), called from here.
"""
