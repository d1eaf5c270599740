"""The embedded AWS sandbox: moto with IAM enforcement on loopback, made to deny like AWS."""
