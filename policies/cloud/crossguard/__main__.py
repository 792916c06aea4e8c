"""CrossGuard entry point: the Pulumi CLI runs this to serve the pack (it blocks; never import it elsewhere)."""

from policies.cloud.pack import serve_policy_pack

serve_policy_pack()
