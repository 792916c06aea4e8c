"""等保 2.0 (GB/T 22239-2019) compliance: catalog as data, evidence models, automatic checks, evaluation, report data.

Public entry points:

* :func:`policies.mlps.catalog.default_catalog` — the validated catalog (levels 2 and 3, general + cloud extension);
* :class:`policies.mlps.evidence.Evidence` — what collectors produce per system
  (:func:`policies.mlps.collect_register.evidence_from_register` fills the register section);
* :func:`policies.mlps.evaluate.evaluate` / :class:`policies.mlps.evaluate.Evaluator` — system × catalog → results;
* :func:`policies.mlps.report.report_data`, :func:`policies.mlps.report.to_csv` — JSON/CSV-ready report data.
"""
