"""The 等保-driven policy pack for the cloud program: rule metadata as data (``rules.yaml``), the checks as plain
functions over planned resources, the evaluator plan mode uses, and a thin wrapper for pulumi_policy (CrossGuard)."""
