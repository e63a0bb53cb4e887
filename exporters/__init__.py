"""One module per export format and one registry table (exporters.registry).

Exporters know nothing of the CLI: each is a plain function
`(saved_model_dir, out_dir, options) -> ExportResult`.
"""
