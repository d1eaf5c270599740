"""The embedded AWS sandbox: moto with IAM enforcement on loopback, made to deny like AWS.

- ``server`` / ``process``: the sandbox server process and the parent's handle on it
  (``LocalSandbox``: start, stop, move the clock, set IAM's propagation delay);
- ``patches``: every change made to moto, in one place;
- ``requests``: a request's IAM action and resource; ``authorize``: policy evaluation, trust
  policies, AWS's wording; ``enforcement``: deciding as a principal, the authorization log;
  ``refusals``: error responses in each protocol's shape;
- ``principals``, ``sessions``, ``propagation``, ``clock``: who calls, for how long, and when
  a policy change is seen;
- ``stack_calls`` (what CloudFormation calls as the caller, per resource type) and
  ``stack_engine`` (stack operations that check those calls, fail, and roll back);
- ``control``: the ``/_discover/...`` endpoint tests use.
"""
