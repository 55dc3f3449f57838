"""Exercise 12.2: an alert for stuck payments — the Checkout/Pay invocations Restate has paused
(five failed attempts), and nothing else. The status survives a restart of restate-server;
retry_count and last_failure do not (they are the invoker's memory)."""

STUCK_PAYMENTS = """
SELECT id, status, modified_at
FROM sys_invocation
WHERE target = 'Checkout/Pay' AND status = 'paused'
"""
