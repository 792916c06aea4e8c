"""Department tickets (flow 1): request → admission (plan + policy) → security review → resource approval →
provisioning (plan mode) → on-boarding → delivered → expiry reminder → renewed | reclaiming → closed."""
