"""等保 2.0 for auditors: evidence collectors over the register, hosts, SOC, drills, cloud plans and TLS probes
(they read infra/soc data and hand plain :class:`policies.mlps.evidence.Evidence` to the pure evaluation), stored
evaluations with auditor answers and the trend, signed reports (HTML/JSON/CSV + manifest + Ed25519 signature).

Entry points: :func:`portal.compliance.collect.collect_evidence`, :func:`portal.compliance.store.run_evaluation`,
:func:`portal.compliance.reports.write_report`, :func:`portal.compliance.reports.verify_report`.
"""
