"""Reports: Tables 1-3 from the results store, beside the paper's values (no torch, no MLflow).

Entry point: :func:`ablate.report.build.render_report`; the CLI command is
:func:`ablate.report.commands.report_command`.
"""
