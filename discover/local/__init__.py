"""The embedded AWS sandbox: moto with IAM enforcement on loopback, made to deny like AWS.

- ``server`` / ``process``: the sandbox server process and the parent's handle on it
  (``LocalSandbox``: start, stop, move the clock, set IAM's propagation delay);
- ``patches``: every change made to moto, in one place;
- ``requests``: a request's IAM action and resource; ``authorize``: policy evaluation, trust
  policies, AWS's wording; ``enforcement``: deciding as a principal, the authorization log;
  ``refusals``: error responses in each protocol's shape;
- ``principals``, ``sessions``, ``propagation``, ``clock``: who calls, for how long, and when
  a policy change is seen;
- ``schemas`` (the registry schemas cfn-lint ships, their names read as IAM actions),
  ``handler_model`` (what each type's handlers call as the caller, generated for every type),
  ``stack_calls`` (the overrides: conditions, ARNs and wording the schemas cannot give),
  ``ledger`` (each schema action of the services' types, modelled or excluded, and why) and
  ``stack_engine`` (stack operations that check those calls, tag, replace, fail and roll back
  as the caller);
- ``control``: the ``/_discover/...`` endpoint (clock, propagation, excluded actions).
"""
