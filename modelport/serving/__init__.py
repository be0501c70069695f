"""Model serving: the registry, flavors, input schemas, the predictor and its records.

Services here are shared by the pages, the JSON API, the inference protocol and the CLI.
"""
