"""Expert validation of a built dataset: export a stratified sample, rate it in a browser, report.

- `validation.export.export_validation`: run folder -> self-contained rating folder (images, samples.json,
  manifest).
- `validation.server.serve_rating`: the rating web app on 127.0.0.1; answers go to `ratings/<rater>.json`.
- `validation.report.validation_report`: distributions, inter-rater agreement, filters vs experts, report.md.
"""
